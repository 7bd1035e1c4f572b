"""Embedding at corpus scale: lazy input, bounded memory, numbered shards, a manifest, resume.

- :mod:`~bertzoo.corpus.sources`: input files read lazily (plain text, JSON lines, parquet).
- :mod:`~bertzoo.corpus.stream`: ``bertzoo.embed_stream``, chunk by chunk in input order.
- :mod:`~bertzoo.corpus.shards`: the one table of shard formats (write, read, layout note):
  ``SHARD_WRITERS``, ``ShardFormat``.
- :mod:`~bertzoo.corpus.manifest`: ``manifest.json``, fingerprints, resume checks, the tally.
- :mod:`~bertzoo.corpus.folder`: :func:`embed_to_folder`, the killable, resumable folder job.
- :mod:`~bertzoo.corpus.lock`: one writer per output folder (an OS file lock held for the run).
- :mod:`~bertzoo.corpus.guards`: output paths checked before any work (never an input, always writable).
"""

from __future__ import annotations

from bertzoo.corpus.folder import embed_to_folder
from bertzoo.corpus.guards import check_folder_output, check_output_file, same_file
from bertzoo.corpus.lock import LOCK_NAME, FolderLock, FolderLockedError
from bertzoo.corpus.manifest import MANIFEST, MANIFEST_VERSION, file_digest, model_fingerprint, read_manifest
from bertzoo.corpus.shards import DEFAULT_SHARD_SIZE, SHARD_FORMATS, load_folder, row_dtype
from bertzoo.corpus.sources import (
    DEFAULT_MAX_LINE_BYTES,
    InputSource,
    check_encodable,
    parse_line,
    read_texts,
)
from bertzoo.corpus.stream import DEFAULT_CHUNK_SIZE, StreamChunk, StreamOptions, embed_chunk, embed_stream

__all__ = [
    "DEFAULT_CHUNK_SIZE", "DEFAULT_MAX_LINE_BYTES", "DEFAULT_SHARD_SIZE", "LOCK_NAME", "MANIFEST", "MANIFEST_VERSION",
    "SHARD_FORMATS", "FolderLock", "FolderLockedError", "InputSource", "StreamChunk", "StreamOptions",
    "check_encodable", "check_folder_output", "check_output_file", "embed_chunk", "embed_stream", "embed_to_folder",
    "file_digest", "load_folder", "model_fingerprint", "parse_line", "read_manifest", "read_texts", "row_dtype",
    "same_file",
]
