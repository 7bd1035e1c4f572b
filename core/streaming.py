"""Deprecated location, kept for one release; import from bertzoo.corpus.

Corpus-scale embedding moved to the :mod:`bertzoo.corpus` package (sources, stream, shards,
manifest, folder); this module re-exports the names it used to define.
"""

from __future__ import annotations

from bertzoo._fs import atomic_write
from bertzoo.corpus import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_SHARD_SIZE,
    MANIFEST,
    MANIFEST_VERSION,
    SHARD_FORMATS,
    InputSource,
    StreamChunk,
    StreamOptions,
    embed_chunk,
    embed_stream,
    embed_to_folder,
    file_digest,
    load_folder,
    model_fingerprint,
    parse_line,
    read_manifest,
    row_dtype,
)
from bertzoo.inference.vectors import STORED_DTYPES

__all__ = [
    "DEFAULT_CHUNK_SIZE", "DEFAULT_SHARD_SIZE", "InputSource", "MANIFEST", "MANIFEST_VERSION", "SHARD_FORMATS",
    "STORED_DTYPES", "StreamChunk", "StreamOptions", "atomic_write", "embed_chunk", "embed_stream",
    "embed_to_folder", "file_digest", "load_folder", "model_fingerprint", "parse_line", "read_manifest",
    "row_dtype",
]
