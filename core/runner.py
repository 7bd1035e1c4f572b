"""Deprecated location, kept for one release; import from :mod:`bertzoo.inference` (``bertzoo.embed``, ``bertzoo.Pipeline``, ...)."""

from bertzoo._lazy import forwarded

__getattr__, __dir__ = forwarded(__name__, (
    "bertzoo.inference.pipeline",
    "bertzoo.inference.batching",
    "bertzoo.inference.truncation",
    "bertzoo.inference.classify",
    "bertzoo.inference.engine",
))
