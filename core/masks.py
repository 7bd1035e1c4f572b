"""Deprecated location, kept for one release; import from bertzoo.model.masks (and bertzoo.model.packing)."""

from __future__ import annotations

from bertzoo.model.masks import (
    additive_mask,
    boolean_mask,
    cross_attention_mask,
    empty_rows,
    padding_mask,
    self_attention_mask,
)
from bertzoo.model.packing import OFFSETS, Packing, packing_from_mask

__all__ = [
    "OFFSETS", "Packing", "additive_mask", "boolean_mask", "cross_attention_mask", "empty_rows", "packing_from_mask",
    "padding_mask", "self_attention_mask",
]
