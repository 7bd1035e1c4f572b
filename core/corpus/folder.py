"""A corpus into a shard folder: ``bertzoo embed --input FILE --output DIR/``, killable and resumable.

The folder::

    out/
      manifest.json            model, options, input fingerprint, shard list, counts, truncation
      shard-00000.npy          (n, D) vectors of rows [0, n) in the stored precision
      shard-00000.rows.npy     (n,) records: row (input index), tokens (whole text, specials
                               included), truncated (bool), and scale (float32) for int8
      shard-00001.npy ...      the next rows, in input order

or ``shard-00000.parquet`` per shard with ``format="parquet"`` (see :mod:`bertzoo.corpus.shards`).

One writer at a time: the run holds an OS lock on the folder (:mod:`bertzoo.corpus.lock`) from
before it reads the folder until it ends; a second run, ``resume`` or not, is refused with the
holder's pid. The input may not be the folder nor lie inside it (:mod:`bertzoo.corpus.guards`).
Every vector is checked once per chunk: one holding NaN or Inf stops the job, naming the text
and the shard, before its shard is written.

Crash safety: each file is written to a hidden temporary name, fsynced and renamed, then the
manifest is rewritten the same way, so a shard is either listed complete in the manifest or
ignored; no partial file ever has a final name. ``resume=True`` checks that the model, the
options and the input are the ones the manifest records (sha256 fingerprints), then continues
after the last listed shard; the result is bitwise what an uninterrupted run writes (shards are
cut at the same rows and each is computed the same way), apart from the manifest's ``timing``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from bertzoo.corpus.guards import check_folder_output
from bertzoo.corpus.lock import FolderLock
from bertzoo.corpus.manifest import create_folder, prepare_folder
from bertzoo.corpus.run import Position, input_record, next_chunk_rows, start_manifest, write_shards
from bertzoo.corpus.shards import DEFAULT_FORMAT, DEFAULT_SHARD_SIZE, shard_format
from bertzoo.corpus.sources import InputSource
from bertzoo.corpus.stream import DEFAULT_CHUNK_SIZE, StreamChunk, StreamOptions, embed_chunk
from bertzoo.errors import InputError


def embed_to_folder(
    source: InputSource,
    folder: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    *,
    head: str | None = None,
    resume: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    format: str = DEFAULT_FORMAT,
    truncate: str = "warn",
    normalize: bool | None = None,
    dim: int | None = None,
    precision: str = "float32",
    batch_tokens: int | None = None,
    compute: str | None = None,
    dtype: str | None = None,
    quantize: str | None = None,
    threads: int | None = None,
    device: str | None = None,
    progress: bool | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Embed ``source`` into numbered shards plus ``manifest.json`` in ``folder``; returns the manifest.

    The input is scanned first (rows counted, every line checked, bytes fingerprinted), so a bad
    line stops the job before anything is written. The folder is locked for the run. ``say``
    receives one-line messages (the truncation summary, resume notes). The other arguments are
    :func:`~bertzoo.corpus.embed_stream`'s.

    Raises:
        InputError: bad options, a bad input line, an input that is (or is inside) the folder, a
            non-empty folder without ``resume``, a ``resume`` whose model, options or input differ
            from the manifest's, or a long text under ``truncate="error"``.
        FolderLockedError: another run is writing the folder (its pid is named).
        NonFiniteVectorError: a vector holding NaN or Inf (a corrupted model), naming the text
            and the shard; that shard is not written.
    """
    say = say or (lambda message: None)
    root = Path(folder)
    stream_options = check_job_options(format, shard_size, chunk_size, truncate, normalize, dim, precision,
                                       batch_tokens)
    if resume and source.path == "-":
        raise InputError("--resume needs an input file: stdin cannot be read again; write it to a file first")
    check_folder_output(root, inputs=(source.path,))
    create_folder(root)
    with FolderLock(root):
        previous = prepare_folder(root, resume)
        pipe = load_pipeline("embed", model, head=head, compute=compute, dtype=dtype, quantize=quantize,
                             device=device)
        manifest = start_manifest(root, input_record(source), pipe, previous, model, stream_options, say,
                                  format=format, shard_size=shard_size, chunk_size=chunk_size)
        if manifest["complete"]:
            say(f"{root} is already complete ({manifest['rows_done']:,} rows)")
            return manifest
        chunks = _local_chunks(source, pipe, manifest, stream_options, shard_size=shard_size, chunk_size=chunk_size,
                               threads=threads)
        return write_shards(root, manifest, chunks, stream_options, say, shard_size=shard_size, progress=progress)


def check_job_options(format: str, shard_size: int, chunk_size: int, truncate: str, normalize: bool | None,
                      dim: int | None, precision: str, batch_tokens: int | None) -> StreamOptions:
    """The options of a folder job, checked before anything is read or written (every engine calls it).

    Raises:
        InputError: an unknown or unavailable format, sizes under 1, a bad policy or precision.
    """
    shard_format(format).check_available()
    if shard_size < 1 or chunk_size < 1:
        raise InputError(f"shard_size={shard_size} and chunk_size={chunk_size} must be at least 1")
    stream_options = StreamOptions(truncate, normalize, dim, precision, batch_tokens)
    stream_options.check()
    return stream_options


def load_pipeline(task: str, model: str | os.PathLike[str] | None, **options: Any) -> Any:
    """:func:`bertzoo.inference.pipeline.get_pipeline`, imported when a job starts (it is heavy)."""
    from bertzoo.inference.pipeline import get_pipeline as load

    return load(task, model, **options)


def _local_chunks(source: InputSource, pipe: Any, manifest: dict[str, Any], stream_options: StreamOptions, *,
                  shard_size: int, chunk_size: int, threads: int | None) -> Iterator[tuple[StreamChunk, Position]]:
    """The chunks after the manifest's last shard, read lazily from ``source`` and embedded in this process."""
    last = manifest["shards"][-1] if manifest["shards"] else None
    offset, line = (last["input_end"]["offset"], last["input_end"]["line"]) if last else (0, 1)
    rows_iter = source.rows(offset=offset, line=line)
    row = manifest["rows_done"]
    while True:
        take = next_chunk_rows(row, shard_size, chunk_size)
        batch = list(islice(rows_iter, take))
        if not batch:
            return
        chunk = embed_chunk(pipe, [t for t, _, _ in batch], row, stream_options, threads=threads,
                            where=f" (shard {row // shard_size})")
        yield chunk, {"offset": batch[-1][1], "line": batch[-1][2]}
        row += len(batch)
        if len(batch) < take:
            return


__all__ = ["check_job_options", "embed_to_folder", "load_pipeline"]
