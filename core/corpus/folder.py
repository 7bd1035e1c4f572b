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
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from bertzoo.corpus.guards import check_folder_output
from bertzoo.corpus.lock import FolderLock
from bertzoo.corpus.manifest import (
    check_resumable,
    create_folder,
    model_fingerprint,
    new_manifest,
    now,
    prepare_folder,
    tally,
    write_manifest,
)
from bertzoo.corpus.shards import DEFAULT_FORMAT, DEFAULT_SHARD_SIZE, row_dtype, shard_format, write_shard
from bertzoo.corpus.sources import InputSource
from bertzoo.corpus.stream import (
    DEFAULT_CHUNK_SIZE,
    StreamChunk,
    StreamOptions,
    embed_chunk,
)
from bertzoo.errors import InputError
from bertzoo.inference.vectors import STORED_DTYPES, check_output_options, stored_width


@dataclass
class _Shard:
    """The rows of one shard being filled, in stored form."""

    index: int
    start: int
    chunks: list[StreamChunk] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(c) for c in self.chunks)

    def tokens(self) -> np.ndarray:
        return np.concatenate([c.tokens for c in self.chunks])

    def arrays(self, precision: str) -> tuple[np.ndarray, np.ndarray]:
        vectors = np.concatenate([c.vectors for c in self.chunks])
        rows = np.empty(self.count, dtype=row_dtype(precision))
        rows["row"] = np.arange(self.start, self.start + self.count)
        rows["tokens"] = self.tokens()
        rows["truncated"] = np.concatenate([c.truncated for c in self.chunks])
        if precision == "int8":
            rows["scale"] = np.concatenate([c.scales for c in self.chunks if c.scales is not None])
        return vectors, rows


class _Progress:
    """texts/s (tqdm's rate and ETA) plus tokens/s, on stderr; off unless asked or on a terminal."""

    def __init__(self, total: int | None, initial: int, show: bool | None) -> None:
        if show is None:
            isatty = getattr(sys.stderr, "isatty", None)
            show = bool(isatty and isatty())
        self.bar: Any = None
        self.tokens = 0
        self.t0 = time.perf_counter()
        if show:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="texts", unit_scale=True, desc="embed",
                            file=sys.stderr, dynamic_ncols=True, smoothing=0.05)

    def update(self, texts: int, tokens: int) -> None:
        if self.bar is None:
            return
        self.tokens += tokens
        rate = self.tokens / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix_str(f"{rate:,.0f} tokens/s", refresh=False)
        self.bar.update(texts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
    shard_format(format).check_available()
    if shard_size < 1 or chunk_size < 1:
        raise InputError(f"shard_size={shard_size} and chunk_size={chunk_size} must be at least 1")
    stream_options = StreamOptions(truncate, normalize, dim, precision, batch_tokens)
    stream_options.check()
    if resume and source.path == "-":
        raise InputError("--resume needs an input file: stdin cannot be read again; write it to a file first")
    check_folder_output(root, inputs=(source.path,))
    create_folder(root)
    with FolderLock(root):
        previous = prepare_folder(root, resume)
        pipe = _load_pipeline("embed", model, head=head, compute=compute, dtype=dtype, quantize=quantize,
                              device=device)
        manifest = _start(root, source, pipe, previous, model, stream_options, say, format=format,
                          shard_size=shard_size, chunk_size=chunk_size)
        if manifest["complete"]:
            say(f"{root} is already complete ({manifest['rows_done']:,} rows)")
            return manifest
        return _run(root, source, pipe, manifest, stream_options, say, shard_size=shard_size,
                    chunk_size=chunk_size, threads=threads, progress=progress)


def _load_pipeline(task: str, model: str | os.PathLike[str] | None, **options: Any) -> Any:
    """:func:`bertzoo.inference.pipeline.get_pipeline`, imported when a job starts (it is heavy)."""
    from bertzoo.inference.pipeline import get_pipeline as load

    return load(task, model, **options)


def _start(root: Path, source: InputSource, pipe: Any, previous: dict[str, Any] | None,
           model: str | os.PathLike[str] | None, stream_options: StreamOptions, say: Callable[[str], None], *,
           format: str, shard_size: int, chunk_size: int) -> dict[str, Any]:
    """The manifest this run continues (checked against ``previous``) or starts; the input is scanned here."""
    from bertzoo import __version__
    from bertzoo.inference.batching import DEFAULT_BATCH_TOKENS

    truncate, normalize, dim, precision, batch_tokens = (
        stream_options.truncate, stream_options.normalize, stream_options.dim, stream_options.precision,
        stream_options.batch_tokens)
    width = check_output_options(pipe.dimension, dim, precision)
    options = {
        "compute": pipe.options.compute, "head": pipe.options.head, "truncate": truncate,
        "normalize": bool(pipe.embedding_normalize) if normalize is None else bool(normalize),
        "dim": width, "precision": precision, "format": format, "shard_size": shard_size, "chunk_size": chunk_size,
        "batch_tokens": DEFAULT_BATCH_TOKENS if batch_tokens is None else int(batch_tokens),
    }
    model_record = {
        "name": None if model is None else str(model), "folder": str(pipe.folder),
        "fingerprint": model_fingerprint(pipe.folder), "dimension": pipe.dimension,
        "normalizes": bool(pipe.embedding_normalize),
        "max_length": pipe.max_length, "max_length_source": pipe.tokenizer.max_length_resolution.source,
    }
    if source.path == "-":
        input_record: dict[str, Any] = {"path": "-", "format": source.format, "field": source.field, "rows": None,
                                        "bytes": None, "sha256": None}
    else:
        input_record = {"path": source.path, "format": source.format, "field": source.field, **source.scan()}
    if previous is not None:
        check_resumable(root, previous, model_record, options, input_record)
        manifest = previous
        say(f"resuming {root}: {manifest['rows_done']:,} of {input_record['rows']:,} rows done "
            f"in {len(manifest['shards'])} shards")
    else:
        output = {"dimension": width, "dtype": STORED_DTYPES[precision],
                  "stored_width": stored_width(width, precision), "layout": shard_format(format).layout(precision)}
        manifest = new_manifest(model=model_record, options=options, source=input_record, output=output,
                                policy=truncate, max_length=pipe.max_length)
    manifest["bertzoo_version"] = __version__
    manifest["timing"]["runs"] += 1
    return manifest


def _run(root: Path, source: InputSource, pipe: Any, manifest: dict[str, Any], stream_options: StreamOptions,
         say: Callable[[str], None], *, shard_size: int, chunk_size: int, threads: int | None,
         progress: bool | None) -> dict[str, Any]:
    """Write the shards after the manifest's last one, then the finished manifest."""
    precision, fmt = stream_options.precision, manifest["options"]["format"]
    write_manifest(root, manifest)
    t0 = time.perf_counter()
    seconds_before = float(manifest["timing"]["seconds"])
    last = manifest["shards"][-1] if manifest["shards"] else None
    offset, line = (last["input_end"]["offset"], last["input_end"]["line"]) if last else (0, 1)
    rows_iter = source.rows(offset=offset, line=line)
    bar = _Progress(manifest["input"]["rows"], manifest["rows_done"], progress)
    try:
        while True:
            shard = _Shard(len(manifest["shards"]), manifest["rows_done"])
            end = offset, line
            while shard.count < shard_size:
                take = min(chunk_size, shard_size - shard.count)
                batch = list(islice(rows_iter, take))
                if not batch:
                    break
                end = batch[-1][1], batch[-1][2]
                chunk = embed_chunk(pipe, [t for t, _, _ in batch], shard.start + shard.count, stream_options,
                                    threads=threads, where=f" (shard {shard.index})")
                shard.chunks.append(chunk)
                bar.update(len(chunk), int(np.minimum(chunk.tokens, pipe.max_length).sum()))
                if len(batch) < take:
                    break
            if shard.count == 0:
                break
            files = write_shard(root, shard.index, *shard.arrays(precision), precision, fmt)
            tokens = shard.tokens()
            manifest["shards"].append({
                "index": shard.index, "rows": [shard.start, shard.start + shard.count], "count": shard.count,
                "files": files, "input_end": {"offset": int(end[0]), "line": int(end[1])},
                "tokens": int(tokens.sum()), "longest": int(tokens.max()),
                "over_max_length": int(np.count_nonzero(tokens > pipe.max_length)),
            })
            offset, line = end
            manifest["rows_done"] = shard.start + shard.count
            tally(manifest)
            manifest["timing"]["seconds"] = round(seconds_before + time.perf_counter() - t0, 3)
            write_manifest(root, manifest)
            if shard.count < shard_size:
                break
    except KeyboardInterrupt:
        say(f"interrupted after {manifest['rows_done']:,} rows in {len(manifest['shards'])} complete shards; "
            "run the same command with --resume to continue")
        raise
    finally:
        bar.close()
    if manifest["input"]["rows"] is None:
        manifest["input"]["rows"] = manifest["rows_done"]
    manifest["complete"] = True
    tally(manifest)
    manifest["timing"]["seconds"] = round(seconds_before + time.perf_counter() - t0, 3)
    manifest["timing"]["finished"] = now()
    write_manifest(root, manifest)
    summary = manifest["truncation"]["summary"]
    if summary and stream_options.truncate in ("warn", "chunk"):
        say(("warning: " if stream_options.truncate == "warn" else "") + summary)
    return manifest


__all__ = ["embed_to_folder"]
