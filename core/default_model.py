"""Deprecated location, kept for one release; import from bertzoo.checkpoint.default_model.

``bertzoo.default_model`` is the same module object as :mod:`bertzoo.checkpoint.default_model`
(not a copy of its names), so monkeypatching ``DEFAULT_PACKAGE`` here still changes the search.
"""

from __future__ import annotations

import sys

from bertzoo.checkpoint import default_model as _moved
from bertzoo.checkpoint.default_model import (
    DEFAULT_ALIASES,
    DEFAULT_MODEL,
    DEFAULT_PACKAGE,
    default_model_dir,
    resolve_model,
)

__all__ = ["DEFAULT_ALIASES", "DEFAULT_MODEL", "DEFAULT_PACKAGE", "default_model_dir", "resolve_model"]

sys.modules[__name__] = _moved
