"""Deprecated location, kept for one release; import from :mod:`bertzoo.plugins.precisions` (the compute precisions ``bertzoo:bfloat16`` / ``bertzoo:int8``)."""

from bertzoo._lazy import forwarded

__getattr__, __dir__ = forwarded(__name__, (
    "bertzoo.plugins.precisions",
))
