"""What every engine of a shard-folder job shares: the manifest it starts from, the chunk cut, the shard writer.

An engine (the local one in :mod:`bertzoo.corpus.folder`, Ray Data in
:mod:`bertzoo.integrations.ray_corpus`) only produces :class:`~bertzoo.corpus.stream.StreamChunk`
objects in input order, each with the input position after its last row; :func:`write_shards`
turns them into numbered shards and manifest updates. Both cut chunks with
:func:`next_chunk_rows`, so the same rows are embedded together and the vectors agree bit for bit.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bertzoo.corpus.manifest import (
    check_resumable,
    model_fingerprint,
    new_manifest,
    now,
    tally,
    write_manifest,
)
from bertzoo.corpus.shards import row_dtype, shard_format, write_shard
from bertzoo.corpus.sources import InputSource
from bertzoo.corpus.stream import StreamChunk, StreamOptions
from bertzoo.errors import BertzooError
from bertzoo.inference.vectors import STORED_DTYPES, check_output_options, stored_width

# where the next row starts: {"offset", "line"} (plus "file" for a multi-file input), the manifest's input_end
Position = dict[str, int]


def next_chunk_rows(row: int, shard_size: int, chunk_size: int) -> int:
    """Rows in the chunk that starts at input row ``row``: ``chunk_size``, cut short at the shard's end.

    Every engine cuts chunks this way, so each row is embedded with the same neighbours however
    the job runs (and resumes: shards start at multiples of ``shard_size``).
    """
    return min(chunk_size, shard_size - row % shard_size)


def input_record(source: InputSource) -> dict[str, Any]:
    """The manifest's ``input`` block for one file (scanned: every row read and checked) or stdin."""
    if source.path == "-":
        return {"path": "-", "format": source.format, "field": source.field, "rows": None, "bytes": None,
                "sha256": None}
    return {"path": source.path, "format": source.format, "field": source.field, **source.scan()}


def start_manifest(root: Path, source: dict[str, Any], pipe: Any, previous: dict[str, Any] | None,
                   model: str | os.PathLike[str] | None, stream_options: StreamOptions, say: Callable[[str], None], *,
                   format: str, shard_size: int, chunk_size: int) -> dict[str, Any]:
    """The manifest this run continues (checked against ``previous``) or starts.

    Args:
        source: the ``input`` block (:func:`input_record`).
        pipe: the loaded embed :class:`~bertzoo.inference.pipeline.Pipeline` (its folder, width, options).

    Raises:
        InputError: ``previous`` records another model, other options or another input.
    """
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
    if previous is not None:
        check_resumable(root, previous, model_record, options, source)
        manifest = previous
        say(f"resuming {root}: {manifest['rows_done']:,} of {source['rows']:,} rows done "
            f"in {len(manifest['shards'])} shards")
    else:
        output = {"dimension": width, "dtype": STORED_DTYPES[precision],
                  "stored_width": stored_width(width, precision), "layout": shard_format(format).layout(precision)}
        manifest = new_manifest(model=model_record, options=options, source=source, output=output,
                                policy=truncate, max_length=pipe.max_length)
    manifest["bertzoo_version"] = __version__
    manifest["timing"]["runs"] += 1
    return manifest


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


def write_shards(root: Path, manifest: dict[str, Any], chunks: Iterable[tuple[StreamChunk, Position]],
                 stream_options: StreamOptions, say: Callable[[str], None], *, shard_size: int,
                 progress: bool | None) -> dict[str, Any]:
    """Write ``chunks`` (in input order, from row ``manifest["rows_done"]``) as the shards after the
    manifest's last one, rewriting the manifest after each; then the finished manifest.

    Raises:
        BertzooError: a chunk that does not start where the previous one ended, or that crosses a
            shard's end (an engine bug: nothing of it is written).
    """
    precision, fmt = stream_options.precision, manifest["options"]["format"]
    max_length = int(manifest["truncation"]["max_length"])
    write_manifest(root, manifest)
    t0 = time.perf_counter()
    seconds_before = float(manifest["timing"]["seconds"])
    bar = _Progress(manifest["input"]["rows"], manifest["rows_done"], progress)
    shard = _Shard(len(manifest["shards"]), manifest["rows_done"])
    end: Position | None = None

    def flush() -> None:
        nonlocal shard
        files = write_shard(root, shard.index, *shard.arrays(precision), precision, fmt)
        tokens = shard.tokens()
        manifest["shards"].append({
            "index": shard.index, "rows": [shard.start, shard.start + shard.count], "count": shard.count,
            "files": files, "input_end": end, "tokens": int(tokens.sum()), "longest": int(tokens.max()),
            "over_max_length": int(np.count_nonzero(tokens > max_length)),
        })
        manifest["rows_done"] = shard.start + shard.count
        tally(manifest)
        manifest["timing"]["seconds"] = round(seconds_before + time.perf_counter() - t0, 3)
        write_manifest(root, manifest)
        shard = _Shard(shard.index + 1, manifest["rows_done"])

    try:
        for chunk, chunk_end in chunks:
            if chunk.start != shard.start + shard.count or shard.count + len(chunk) > shard_size:
                raise BertzooError(f"rows {chunk.start}..{chunk.start + len(chunk)} arrived where shard "
                                   f"{shard.index} expected row {shard.start + shard.count} (at most "
                                   f"{shard_size - shard.count} rows); this is a bug in the engine: please report it")
            shard.chunks.append(chunk)
            end = {k: int(v) for k, v in chunk_end.items()}
            bar.update(len(chunk), int(np.minimum(chunk.tokens, max_length).sum()))
            if shard.count == shard_size:
                flush()
        if shard.count:
            flush()
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


__all__ = ["Position", "input_record", "next_chunk_rows", "start_manifest", "write_shards"]
