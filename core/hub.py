"""Deprecated location, kept for one release; import from bertzoo.checkpoint.hub.

``bertzoo.hub`` is the same module object as :mod:`bertzoo.checkpoint.hub` (not a copy of its
names), so code that monkeypatches an attribute here still changes what the functions see.
"""

from __future__ import annotations

import sys

from bertzoo.checkpoint import hub as _moved
from bertzoo.checkpoint.hub import (
    HUB_PATTERNS,
    PICKLE_PATTERNS,
    has_checkpoint,
    hub_cache_dir,
    is_offline,
    looks_like_hub_id,
    resolve_model_dir,
)

__all__ = ["HUB_PATTERNS", "PICKLE_PATTERNS", "has_checkpoint", "hub_cache_dir", "is_offline", "looks_like_hub_id",
           "resolve_model_dir"]

sys.modules[__name__] = _moved
