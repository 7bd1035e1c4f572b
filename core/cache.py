"""Deprecated location, kept for one release; import from :mod:`bertzoo.model.cache`."""

from bertzoo._lazy import forwarded

__getattr__, __dir__ = forwarded(__name__, (
    "bertzoo.model.cache",
))
