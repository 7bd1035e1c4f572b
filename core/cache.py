"""Deprecated location, kept for one release; import from bertzoo.model.cache."""

from __future__ import annotations

from bertzoo.model.cache import CacheHandle, KVCache, LayerCache, LegacyCache

__all__ = ["CacheHandle", "KVCache", "LayerCache", "LegacyCache"]
