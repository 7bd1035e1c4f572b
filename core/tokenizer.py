"""Deprecated location, kept for one release; import from :mod:`bertzoo.inference.tokenizer`."""

from bertzoo.inference.tokenizer import BatchEncoding, FittedIds, TextInput, TokenIds, Tokenizer
from bertzoo.inference.tokenizer_files import MaxLengthResolution, build_wordpiece, resolve_max_length

__all__ = ["BatchEncoding", "FittedIds", "MaxLengthResolution", "TextInput", "TokenIds", "Tokenizer",
           "build_wordpiece", "resolve_max_length"]
