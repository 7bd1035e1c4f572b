"""Deprecated location, kept for one release; import from :mod:`bertzoo.corpus` (and :mod:`bertzoo.inference.vectors`)."""

from bertzoo._lazy import forwarded

__getattr__, __dir__ = forwarded(__name__, (
    "bertzoo.corpus",
    "bertzoo.inference.vectors",
    "bertzoo._fs",
))
