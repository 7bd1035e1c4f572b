"""Embedding at corpus scale: lazy input, bounded memory, numbered shards, a manifest, resume.

Two entry points:

- ``bertzoo.embed_stream(texts, model=..., chunk_size=...)`` takes any iterable of strings and
  yields :class:`StreamChunk` objects in input order, ``chunk_size`` texts at a time; memory
  holds one chunk, whatever the length of the stream. Within a chunk the runner's length-sorted
  token-budget batching applies.
- :func:`embed_to_folder` (``bertzoo embed --input FILE --output DIR/``) reads a ``.txt``,
  ``.jsonl`` or ``.parquet`` file lazily and writes numbered shards plus ``manifest.json``.

The folder::

    out/
      manifest.json            model, options, input fingerprint, shard list, counts, truncation
      shard-00000.npy          (n, D) vectors of rows [0, n) in the stored precision
      shard-00000.rows.npy     (n,) records: row (input index), tokens (whole text, specials
                               included), truncated (bool), and scale (float32) for int8
      shard-00001.npy ...      the next rows, in input order

or ``shard-00000.parquet`` (columns ``row``, ``embedding``, ``tokens``, ``truncated``, ``scale``
for int8) with ``format="parquet"`` (needs pyarrow).

Crash safety: each file is written to a hidden temporary name, fsynced and renamed, then the
manifest is rewritten the same way, so a shard is either listed complete in the manifest or
ignored; no partial file ever has a final name. ``resume=True`` checks that the model, the
options and the input are the ones the manifest records (sha256 fingerprints), then continues
after the last listed shard; the result is bitwise what an uninterrupted run writes (shards are
cut at the same rows and each is computed the same way), apart from the manifest's ``timing``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any

import numpy as np

from bertzoo.errors import InputError
from bertzoo.outputs import PRECISIONS, check_output_options, shape_vectors

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
DEFAULT_CHUNK_SIZE = 4096  # texts tokenized and batched together: bounded memory, good length sorting
DEFAULT_SHARD_SIZE = 20_000  # rows per shard: the work a crash can lose
SHARD_FORMATS = ("npy", "parquet")
_HASH_BLOCK = 1 << 20


# -- input ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputSource:
    """An input file read lazily, row by row.

    Attributes:
        path: the file, or ``"-"`` for stdin (read once: no scan, no resume).
        format: ``"text"`` (one text per line, blank lines kept as empty texts), ``"jsonl"``
            (blank lines skipped) or ``"parquet"``.
        field: the JSON-lines field / parquet column holding the text (default ``"text"``).
        pair_field: a second field read as the pair of each text (``classify``); JSON lines only.
    """

    path: str
    format: str
    field: str = "text"
    pair_field: str | None = None

    @classmethod
    def from_path(cls, path: str, field: str | None = None, *, jsonl: bool | None = None,
                  pair_field: str | None = None) -> InputSource:
        """The source for ``path``: parquet by suffix, JSON lines by suffix or when ``field`` is given."""
        if str(path).endswith(".parquet"):
            fmt = "parquet"
        elif jsonl if jsonl is not None else (field is not None or str(path).endswith((".jsonl", ".ndjson"))):
            fmt = "jsonl"
        else:
            fmt = "text"
        if pair_field is not None and fmt != "jsonl":
            raise InputError(f"--pair-field needs JSON lines; {path!r} is read as {fmt}")
        return cls(str(path), fmt, field or "text", pair_field)

    @property
    def name(self) -> str:
        return "stdin" if self.path == "-" else self.path

    def _open(self) -> IO[bytes]:
        try:
            return sys.stdin.buffer if self.path == "-" else open(self.path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise InputError(f"cannot read --input {self.name!r} ({exc.strerror or exc}); check the path") from None

    def rows(self, *, offset: int = 0, line: int = 1) -> Iterator[tuple[Any, int, int]]:
        """Yield ``(text, end, next_line)`` from byte ``offset`` (row ``offset`` for parquet).

        ``end`` is where the next row starts (a byte offset, or a row number for parquet), so a
        run can restart exactly there; ``line`` numbers the first line read, for messages.

        Raises:
            InputError: an unreadable file or a bad line (named by its number).
        """
        if self.format == "parquet":
            yield from self._parquet_rows(offset)
            return
        f = self._open()
        try:
            if offset:
                f.seek(offset)
            position = offset
            for raw in f:
                position += len(raw)
                text = parse_line(raw, line, self.name, self.format == "jsonl", self.field, self.pair_field)
                line += 1
                if text is not None:
                    yield text, position, line
        finally:
            if f is not sys.stdin.buffer:
                f.close()

    def _parquet_file(self) -> Any:
        pq = _pyarrow_parquet("reading --input " + self.name)
        try:
            pf = pq.ParquetFile(self.path)
        except (OSError, Exception) as exc:  # pyarrow raises ArrowInvalid / OSError
            raise InputError(f"cannot read parquet --input {self.name!r} ({exc}); check the file") from None
        names = pf.schema_arrow.names
        if self.field not in names:
            raise InputError(f"{self.name} has no column {self.field!r} (columns: {', '.join(names)}); "
                             "name the text column with --field")
        import pyarrow as pa

        kind = pf.schema_arrow.field(self.field).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise InputError(f"{self.name} column {self.field!r} holds {kind}, not strings; name the text column "
                             "with --field")
        return pf

    def _parquet_rows(self, skip: int) -> Iterator[tuple[Any, int, int]]:
        pf = self._parquet_file()
        row, first = 0, 0
        for g in range(pf.metadata.num_row_groups):  # skip whole row groups before the restart row
            n = pf.metadata.row_group(g).num_rows
            if row + n > skip:
                break
            row, first = row + n, g + 1
        groups = list(range(first, pf.metadata.num_row_groups))
        if not groups:
            return
        for batch in pf.iter_batches(batch_size=DEFAULT_CHUNK_SIZE, columns=[self.field], row_groups=groups):
            values = batch.column(0).to_pylist()
            for value in values:
                if row >= skip:
                    if value is None:
                        raise InputError(f"{self.name} row {row} has no text (null in column {self.field!r}); "
                                         "drop or fill the null rows")
                    yield value, row + 1, row + 2
                row += 1

    def scan(self) -> dict[str, Any]:
        """Read the whole input once: count its rows, check every one, fingerprint its bytes.

        Returns:
            ``{"rows", "bytes", "sha256"}``.

        Raises:
            InputError: a bad line (before anything is written), or stdin (cannot be read twice).
        """
        if self.path == "-":
            raise InputError("stdin cannot be scanned or resumed; write it to a file first")
        rows = sum(1 for _ in self.rows())
        digest, size = file_digest(self.path)
        return {"rows": rows, "bytes": size, "sha256": digest}


def parse_line(raw: bytes, number: int, name: str, jsonl: bool, field: str = "text",
               pair_field: str | None = None) -> Any:
    """The text of one input line (None for a blank JSON line); ``(text, pair)`` with ``pair_field``.

    Raises:
        InputError: invalid UTF-8, bad JSON, or a missing / non-string field, naming the line.
    """
    raw = raw.removesuffix(b"\n").removesuffix(b"\r")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name} line {number} is not valid UTF-8 (byte {exc.start}: {raw[exc.start:exc.start + 1]!r}); "
            "convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from None
    if not jsonl:
        return line
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name} line {number} is not valid JSON ({exc.msg} at column {exc.colno}); "
                         "fix the line, or read the file as plain text without --field") from None
    if not isinstance(record, dict) or not isinstance(record.get(field), str):
        got = type(record.get(field)).__name__ if isinstance(record, dict) and field in record else "no such key"
        raise InputError(f"{name} line {number} has no string field {field!r} ({got}); "
                         "name the field that holds the text with --field")
    if pair_field is None:
        return record[field]
    pair = record.get(pair_field)
    if not isinstance(pair, str):
        raise InputError(f"{name} line {number} has no string field {pair_field!r} for --pair-field")
    return record[field], pair


def file_digest(path: str | os.PathLike[str]) -> tuple[str, int]:
    """``("sha256:<hex>", size in bytes)`` of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
            size += len(block)
    return "sha256:" + h.hexdigest(), size


def model_fingerprint(folder: str | os.PathLike[str]) -> str:
    """sha256 over a model folder's config, tokenizer and weight files (names and bytes)."""
    root = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
                       and p.suffix in (".json", ".txt", ".safetensors", ".bin", ".model")):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(file_digest(path)[0].encode() + b"\0")
    return "sha256:" + h.hexdigest()


def _pyarrow_parquet(what: str) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{what} needs pyarrow, which is not installed; `pip install pyarrow`, "
                         "or use .txt / .jsonl input and --format npy") from None
    return pq


# -- embedding a stream ------------------------------------------------------------------------------


@dataclass
class StreamChunk:
    """Consecutive results of :func:`embed_stream`.

    Attributes:
        start: input index of the first text in the chunk.
        vectors: ``(n, D)`` in the requested precision (``(n, ceil(D / 8))`` uint8 for binary).
        tokens: ``(n,)`` int32 tokens of each whole text, special tokens included, before any cut.
        truncated: ``(n,)`` bool, the text was cut at the model's maximum length.
        scales: ``(n,)`` float32 per-vector scales for int8 (``x ≈ q * scale``); None otherwise.
    """

    start: int
    vectors: np.ndarray
    tokens: np.ndarray
    truncated: np.ndarray
    scales: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def rows(self) -> np.ndarray:
        """``(n,)`` int64 input indices of the chunk's texts."""
        return np.arange(self.start, self.start + len(self), dtype=np.int64)


@dataclass(frozen=True)
class StreamOptions:
    """What each text's stored vector depends on, besides the model (recorded in the manifest)."""

    truncate: str = "warn"
    normalize: bool | None = None
    dim: int | None = None
    precision: str = "float32"
    batch_tokens: int | None = None

    def check(self) -> None:
        from bertzoo.runner import TRUNCATE_POLICIES

        if self.truncate not in TRUNCATE_POLICIES:
            raise InputError(f"truncate={self.truncate!r} is unknown; use one of {', '.join(TRUNCATE_POLICIES)}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision={self.precision!r} is unknown; use one of {', '.join(PRECISIONS)}")


def embed_chunk(pipe: Any, texts: list[str], start: int, options: StreamOptions, *,
                threads: int | None = None) -> StreamChunk:
    """Embed one chunk with ``pipe`` (a :class:`bertzoo.runner.Pipeline`); ``warn`` is reported by the caller."""
    policy = "silent" if options.truncate == "warn" else options.truncate
    fitted = pipe.encode_for_embedding(texts, policy, first_index=start)
    raw = pipe.embed_encoded(fitted, batch_tokens=options.batch_tokens, normalize=False, progress=False,
                             threads=threads)
    normalize = bool(pipe.model.normalize) if options.normalize is None else options.normalize
    shaped = shape_vectors(raw, normalize=normalize, dim=options.dim, precision=options.precision)
    return StreamChunk(start, shaped.values, fitted.tokens.astype(np.int32), fitted.truncated.copy(), shaped.scales)


def embed_stream(
    texts: Iterable[str],
    model: str | os.PathLike[str] | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    batch_tokens: int | None = None,
    dtype: str = "float32",
    quantize: str | None = None,
    compile: bool = False,
    threads: int | None = None,
    device: str | None = None,
    normalize: bool | None = None,
    dim: int | None = None,
    precision: str = "float32",
    truncate: str = "warn",
) -> Iterator[StreamChunk]:
    """Embed an iterable of texts lazily, yielding :class:`StreamChunk` objects in input order.

    Reads ``chunk_size`` texts at a time from ``texts`` (a generator over a huge file is fine),
    so memory stays bounded by the chunk, not the stream. ``np.concatenate([c.vectors for c in
    embed_stream(texts)])`` equals ``bertzoo.embed(texts)`` to float rounding.

    Args:
        texts: strings, consumed lazily.
        model: as :func:`bertzoo.embed`; the pipeline is cached.
        chunk_size: texts per chunk (tokenized and length-sorted together).
        normalize: L2-normalise (after the ``dim`` cut); None = as the model says.
        dim: keep the first ``dim`` components (Matryoshka-style), re-normalised.
        precision: ``"float32"``, ``"float16"``, ``"int8"`` (per-vector scales in ``scales``) or
            ``"binary"`` (sign bits packed with ``np.packbits``); see :mod:`bertzoo.outputs`.
        truncate: ``"warn"`` (one :class:`~bertzoo.runner.TruncationWarning` at the end of the
            stream with the count), ``"silent"``, ``"error"`` or ``"chunk"``.

    Raises:
        InputError: a non-string item, a bad option, or a long text under ``truncate="error"``.
    """
    from bertzoo.runner import TruncationWarning, get_pipeline, truncation_summary

    if chunk_size < 1:
        raise InputError(f"chunk_size={chunk_size} must be at least 1")
    options = StreamOptions(truncate, normalize, dim, precision, batch_tokens)
    options.check()
    pipe = get_pipeline("embed", model, dtype=dtype, quantize=quantize, compile=compile, device=device)
    check_output_options(pipe.dimension, dim, precision)
    iterator = iter(texts)
    start = cut = 0
    while chunk := list(islice(iterator, chunk_size)):
        for i, t in enumerate(chunk):
            if not isinstance(t, str):
                raise InputError(f"embed_stream: item {start + i} is {type(t).__name__} {t!r:.60}; "
                                 "each item must be a string")
        result = embed_chunk(pipe, chunk, start, options, threads=threads)
        cut += int(result.truncated.sum())
        start += len(chunk)
        yield result
    if truncate == "warn" and cut:
        warnings.warn(truncation_summary(cut, start, pipe.max_length, truncate), TruncationWarning, stacklevel=2)


# -- the shard folder -------------------------------------------------------------------------------------


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through a hidden temporary file: fsync, rename, fsync the folder.

    On any exception (KeyboardInterrupt included) the temporary file is removed; a kill leaves it
    behind under its hidden ``.NAME.tmp-*`` name, which :func:`embed_to_folder` clears on resume.
    """
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # the rename itself is durable once the folder is synced
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and ".tmp-" in name


def row_dtype(precision: str) -> np.dtype:
    """The record type of ``shard-*.rows.npy``."""
    fields: list[tuple[str, str]] = [("row", "<i8"), ("tokens", "<i4"), ("truncated", "?")]
    if precision == "int8":
        fields.append(("scale", "<f4"))
    return np.dtype(fields)


STORED_DTYPES = {"float32": "float32", "float16": "float16", "int8": "int8", "binary": "uint8"}


@dataclass
class _Shard:
    """The rows of one shard being filled, in stored form."""

    index: int
    start: int
    chunks: list[StreamChunk] = field(default_factory=list)

    def add(self, chunk: StreamChunk) -> None:
        self.chunks.append(chunk)

    @property
    def count(self) -> int:
        return sum(len(c) for c in self.chunks)

    def arrays(self, precision: str) -> tuple[np.ndarray, np.ndarray]:
        vectors = np.concatenate([c.vectors for c in self.chunks])
        rows = np.empty(self.count, dtype=row_dtype(precision))
        rows["row"] = np.arange(self.start, self.start + self.count)
        rows["tokens"] = np.concatenate([c.tokens for c in self.chunks])
        rows["truncated"] = np.concatenate([c.truncated for c in self.chunks])
        if precision == "int8":
            rows["scale"] = np.concatenate([c.scales for c in self.chunks if c.scales is not None])
        return vectors, rows


def _write_shard(folder: Path, shard: _Shard, precision: str, fmt: str) -> dict[str, dict[str, Any]]:
    vectors, rows = shard.arrays(precision)
    stem = f"shard-{shard.index:05d}"
    files: dict[str, Path] = {}
    if fmt == "npy":
        files["vectors"] = folder / f"{stem}.npy"
        files["rows"] = folder / f"{stem}.rows.npy"
        atomic_write(files["vectors"], lambda f: np.save(f, vectors, allow_pickle=False))
        atomic_write(files["rows"], lambda f: np.save(f, rows, allow_pickle=False))
    else:
        import pyarrow as pa

        pq = _pyarrow_parquet("--format parquet")
        width = vectors.shape[1]
        columns = {
            "row": pa.array(rows["row"]),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), width),
            "tokens": pa.array(rows["tokens"]),
            "truncated": pa.array(rows["truncated"]),
        }
        if precision == "int8":
            columns["scale"] = pa.array(rows["scale"])
        table = pa.table(columns)
        files["table"] = folder / f"{stem}.parquet"
        atomic_write(files["table"], lambda f: pq.write_table(table, f))
    return {k: {"name": p.name, "bytes": p.stat().st_size, "sha256": file_digest(p)[0]} for k, p in files.items()}


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


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a shard folder.

    Raises:
        InputError: no manifest, or one that cannot be read.
    """
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{str(folder)!r} holds no {MANIFEST}; is it an output folder of `bertzoo embed`?") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {str(path)!r} ({exc}); remove the folder and run again") from None
    if not isinstance(data, dict) or data.get("bertzoo_manifest") != MANIFEST_VERSION:
        raise InputError(f"{str(path)!r} is not a bertzoo manifest of version {MANIFEST_VERSION}")
    return data


def load_folder(folder: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """All vectors and row records of a complete ``.npy`` shard folder, in input order (checksums verified).

    Raises:
        InputError: an incomplete run, a parquet folder, or a file whose checksum differs.
    """
    root = Path(folder)
    manifest = read_manifest(root)
    if not manifest["complete"]:
        raise InputError(f"{str(root)!r} holds an incomplete run ({manifest['rows_done']} rows); "
                         "finish it with `bertzoo embed ... --resume`")
    if manifest["options"]["format"] != "npy":
        raise InputError(f"{str(root)!r} holds parquet shards; read them with pyarrow")
    vectors: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    for shard in manifest["shards"]:
        for key, out in (("vectors", vectors), ("rows", rows)):
            entry = shard["files"][key]
            if file_digest(root / entry["name"])[0] != entry["sha256"]:
                raise InputError(f"{entry['name']} in {str(root)!r} does not match its checksum; it was changed "
                                 "after it was written: re-run the job into a new folder")
            out.append(np.load(root / entry["name"], allow_pickle=False))
    width = manifest["output"]["stored_width"]
    dtype = np.dtype(manifest["output"]["dtype"])
    empty_rows = np.empty(0, dtype=row_dtype(manifest["options"]["precision"]))
    return (np.concatenate(vectors) if vectors else np.empty((0, width), dtype),
            np.concatenate(rows) if rows else empty_rows)


def embed_to_folder(
    source: InputSource,
    folder: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    format: str = "npy",
    truncate: str = "warn",
    normalize: bool | None = None,
    dim: int | None = None,
    precision: str = "float32",
    batch_tokens: int | None = None,
    dtype: str = "float32",
    quantize: str | None = None,
    threads: int | None = None,
    device: str | None = None,
    progress: bool | None = None,
    say: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Embed ``source`` into numbered shards plus ``manifest.json`` in ``folder``; returns the manifest.

    The input is scanned first (rows counted, every line checked, bytes fingerprinted), so a bad
    line stops the job before anything is written. ``say`` receives one-line messages (the
    truncation summary, resume notes).

    Raises:
        InputError: bad options, a bad input line, a non-empty folder without ``resume``, a
            ``resume`` whose model, options or input differ from the manifest's, or a long text
            under ``truncate="error"``.
    """
    from bertzoo.runner import DEFAULT_BATCH_TOKENS, get_pipeline

    say = say or (lambda message: None)
    root = Path(folder)
    if format not in SHARD_FORMATS:
        raise InputError(f"format={format!r} is unknown; use one of {', '.join(SHARD_FORMATS)}")
    if format == "parquet":
        _pyarrow_parquet("--format parquet")
    if shard_size < 1 or chunk_size < 1:
        raise InputError(f"shard_size={shard_size} and chunk_size={chunk_size} must be at least 1")
    stream_options = StreamOptions(truncate, normalize, dim, precision, batch_tokens)
    stream_options.check()
    if resume and source.path == "-":
        raise InputError("--resume needs an input file: stdin cannot be read again; write it to a file first")
    previous = _folder_state(root, resume)

    pipe = get_pipeline("embed", model, dtype=dtype, quantize=quantize, device=device)
    width = check_output_options(pipe.dimension, dim, precision)
    resolved_normalize = bool(pipe.model.normalize) if normalize is None else bool(normalize)
    options = {
        "dtype": pipe.options.dtype, "quantize": quantize, "truncate": truncate, "normalize": resolved_normalize,
        "dim": width, "precision": precision, "format": format, "shard_size": shard_size, "chunk_size": chunk_size,
        "batch_tokens": DEFAULT_BATCH_TOKENS if batch_tokens is None else int(batch_tokens),
    }
    model_record = {
        "name": None if model is None else str(model), "folder": str(pipe.folder),
        "fingerprint": model_fingerprint(pipe.folder), "dimension": pipe.dimension, "pooling": str(pipe.model.pooling),
        "normalizes": bool(pipe.model.normalize), "max_length": pipe.max_length,
        "max_length_source": pipe.tokenizer.max_length_resolution.source,
    }
    if source.path == "-":
        input_record: dict[str, Any] = {"path": "-", "format": source.format, "field": source.field, "rows": None,
                                        "bytes": None, "sha256": None}
    else:
        input_record = {"path": source.path, "format": source.format, "field": source.field, **source.scan()}
    if previous is not None:
        _check_resumable(root, previous, model_record, options, input_record)
        manifest = previous
        say(f"resuming {root}: {manifest['rows_done']:,} of {input_record['rows']:,} rows done "
            f"in {len(manifest['shards'])} shards")
    else:
        manifest = {
            "bertzoo_manifest": MANIFEST_VERSION, "model": model_record, "options": options, "input": input_record,
            "output": {
                "dimension": width, "dtype": STORED_DTYPES[precision],
                "stored_width": -(-width // 8) if precision == "binary" else width,
                "layout": _layout_note(precision, format),
            },
            "shards": [], "rows_done": 0, "complete": False,
            "truncation": {"policy": truncate, "max_length": pipe.max_length, "truncated": 0, "longest": 0,
                           "tokens": 0, "summary": None},
            "timing": {"started": _now(), "finished": None, "seconds": 0.0, "runs": 0},
        }
    from bertzoo import __version__

    manifest["bertzoo_version"] = __version__
    manifest["timing"]["runs"] += 1
    if manifest["complete"]:
        say(f"{root} is already complete ({manifest['rows_done']:,} rows)")
        return manifest
    _write_manifest(root, manifest)

    t0 = time.perf_counter()
    seconds_before = float(manifest["timing"]["seconds"])
    last = manifest["shards"][-1] if manifest["shards"] else None
    offset, line = (last["input_end"]["offset"], last["input_end"]["line"]) if last else (0, 1)
    rows_iter = source.rows(offset=offset, line=line)
    bar = _Progress(input_record["rows"], manifest["rows_done"], progress)
    try:
        while True:
            shard = _Shard(len(manifest["shards"]), manifest["rows_done"])
            end = offset, line
            while shard.count < shard_size:
                take = min(chunk_size, shard_size - shard.count)
                batch = list(islice(rows_iter, take))
                if not batch:
                    break
                texts = [t for t, _, _ in batch]
                end = batch[-1][1], batch[-1][2]
                chunk = embed_chunk(pipe, texts, shard.start + shard.count, stream_options, threads=threads)
                shard.add(chunk)
                bar.update(len(chunk), int(np.minimum(chunk.tokens, pipe.max_length).sum()))
                if len(batch) < take:
                    break
            if shard.count == 0:
                break
            files = _write_shard(root, shard, precision, format)
            tokens = np.concatenate([c.tokens for c in shard.chunks])
            cut = int(np.count_nonzero(tokens > pipe.max_length))
            manifest["shards"].append({
                "index": shard.index, "rows": [shard.start, shard.start + shard.count], "count": shard.count,
                "files": files, "input_end": {"offset": int(end[0]), "line": int(end[1])},
                "tokens": int(tokens.sum()), "longest": int(tokens.max()), "over_max_length": cut,
            })
            offset, line = end
            manifest["rows_done"] = shard.start + shard.count
            _tally(manifest)
            manifest["timing"]["seconds"] = round(seconds_before + time.perf_counter() - t0, 3)
            _write_manifest(root, manifest)
            if shard.count < shard_size:
                break
    except KeyboardInterrupt:
        say(f"interrupted after {manifest['rows_done']:,} rows in {len(manifest['shards'])} complete shards; "
            "run the same command with --resume to continue")
        raise
    finally:
        bar.close()
    if input_record["rows"] is None:
        manifest["input"]["rows"] = manifest["rows_done"]
    manifest["complete"] = True
    _tally(manifest)
    manifest["timing"]["seconds"] = round(seconds_before + time.perf_counter() - t0, 3)
    manifest["timing"]["finished"] = _now()
    _write_manifest(root, manifest)
    summary = manifest["truncation"]["summary"]
    if summary and truncate in ("warn", "chunk"):
        say(("warning: " if truncate == "warn" else "") + summary)
    return manifest


def _layout_note(precision: str, fmt: str) -> str:
    where = "shard-*.npy" if fmt == "npy" else "the 'embedding' column"
    notes = {
        "float32": f"{where}: float32 vectors",
        "float16": f"{where}: float16 vectors",
        "int8": f"{where}: int8 vectors q with a symmetric per-vector scale (rows 'scale'): x ~= q * scale",
        "binary": f"{where}: sign bits (1 where x > 0) packed 8 per byte by np.packbits, big-endian bit order",
    }
    return notes[precision]


def _tally(manifest: dict[str, Any]) -> None:
    shards = manifest["shards"]
    t = manifest["truncation"]
    t["truncated"] = sum(s["over_max_length"] for s in shards)
    t["tokens"] = sum(s["tokens"] for s in shards)
    t["longest"] = max((s["longest"] for s in shards), default=0)
    from bertzoo.runner import truncation_summary

    t["summary"] = (truncation_summary(t["truncated"], manifest["rows_done"], t["max_length"], t["policy"])
                    if t["truncated"] else None)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    data = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")

    def write(f: IO[bytes]) -> None:
        f.write(data)

    atomic_write(root / MANIFEST, write)


def _folder_state(root: Path, resume: bool) -> dict[str, Any] | None:
    """The manifest to continue from (None = start afresh); clears stale temporary files on resume."""
    if root.exists() and not root.is_dir():
        raise InputError(f"--output {str(root)!r} is a file; a folder switches to sharded output: pass a new folder")
    if not root.exists():
        if not root.parent.is_dir():
            raise InputError(f"the parent folder of --output {str(root)!r} does not exist; create it first")
        root.mkdir()
        return None
    names = [p.name for p in root.iterdir()]
    if resume:
        for name in names:
            if _is_temporary(name):
                (root / name).unlink(missing_ok=True)  # left by a killed run
    if MANIFEST in names:
        manifest = read_manifest(root)
        if not resume:
            raise InputError(
                f"--output {str(root)!r} already holds a run ({manifest['rows_done']:,} rows, "
                f"{'complete' if manifest['complete'] else 'incomplete'}); add --resume to continue it, "
                "or choose an empty folder"
            )
        return manifest
    others = [n for n in names if not _is_temporary(n) and not n.startswith("shard-")] if resume else names
    if others:
        raise InputError(f"--output folder {str(root)!r} is not empty ({', '.join(sorted(others)[:5])}); "
                         "choose an empty or new folder")
    return None


def _check_resumable(root: Path, manifest: dict[str, Any], model: dict[str, Any], options: dict[str, Any],
                     source: dict[str, Any]) -> None:
    differences: list[str] = []
    if manifest["model"]["fingerprint"] != model["fingerprint"]:
        differences.append(f"model {manifest['model']['folder']} (weights {manifest['model']['fingerprint'][:19]}) "
                           f"vs {model['folder']} ({model['fingerprint'][:19]})")
    for key in sorted(set(options) | set(manifest["options"])):
        if manifest["options"].get(key) != options.get(key):
            differences.append(f"{key} {manifest['options'].get(key)!r} vs {options.get(key)!r}")
    for key in ("format", "field", "bytes", "sha256"):
        if manifest["input"].get(key) != source.get(key):
            differences.append(f"input {key} {manifest['input'].get(key)!r} vs {source.get(key)!r}")
    if differences:
        raise InputError(
            f"cannot --resume in {str(root)!r}: this run differs from the one its manifest records "
            f"({'; '.join(differences)}); re-run with the same model, options and input, or use a new folder"
        )


__all__ = [
    "DEFAULT_CHUNK_SIZE", "DEFAULT_SHARD_SIZE", "InputSource", "MANIFEST", "StreamChunk", "StreamOptions",
    "atomic_write", "embed_chunk", "embed_stream", "embed_to_folder", "file_digest", "load_folder",
    "model_fingerprint", "parse_line", "read_manifest", "row_dtype",
]
