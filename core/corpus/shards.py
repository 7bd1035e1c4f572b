"""Shard files: one table of formats, each with its writer, its reader and its layout note.

A shard holds consecutive rows of a run: the stored vectors (see :mod:`bertzoo.inference.vectors`)
and one record per row (input index, token count, truncated flag, and the scale for int8).

- ``npy``: ``shard-00000.npy`` ``(n, D)`` vectors plus ``shard-00000.rows.npy`` records.
- ``parquet``: ``shard-00000.parquet`` with columns ``row``, ``embedding`` (fixed-size lists),
  ``tokens``, ``truncated`` and ``scale`` for int8 (needs pyarrow).

:data:`SHARD_WRITERS` is the one place a format is defined: :func:`write_shard`,
:func:`load_folder` and the CLI's ``--format`` choices (:data:`SHARD_FORMATS`) all read it.
Every file is written atomically (:func:`bertzoo._fs.atomic_write`) and listed in the manifest
with its size and sha256, which :func:`load_folder` verifies.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bertzoo._fs import atomic_write
from bertzoo.corpus.manifest import SHARD_PREFIX, file_digest, read_manifest
from bertzoo.corpus.sources import pyarrow_parquet
from bertzoo.errors import InputError
from bertzoo.inference.vectors import PRECISION_LAYOUTS

DEFAULT_SHARD_SIZE = 20_000  # rows per shard: the work a crash can lose
DEFAULT_FORMAT = "npy"

# (folder, file stem, vectors, row records, precision) -> {role: path written}
Writer = Callable[[Path, str, np.ndarray, np.ndarray, str], dict[str, Path]]
# ({role: path}, precision, stored width) -> (vectors, row records)
Reader = Callable[[dict[str, Path], str, int], tuple[np.ndarray, np.ndarray]]


def row_dtype(precision: str) -> np.dtype:
    """The record type of a shard's rows (``shard-*.rows.npy``; the parquet columns besides ``embedding``)."""
    fields: list[tuple[str, str]] = [("row", "<i8"), ("tokens", "<i4"), ("truncated", "?")]
    if precision == "int8":
        fields.append(("scale", "<f4"))
    return np.dtype(fields)


@dataclass(frozen=True)
class ShardFormat:
    """One shard file format.

    Attributes:
        name: the ``--format`` value.
        write: writes one shard's files atomically, returns them by role.
        read: reads one shard's files back.
        where: where the vectors sit, for the layout note.
        help: one line for ``--format``'s help.
        needs: what must be importable first (checked before a run writes anything), or None.
    """

    name: str
    write: Writer
    read: Reader
    where: str
    help: str
    needs: Callable[[], Any] | None = None

    def layout(self, precision: str) -> str:
        """The manifest's one-line note on how a stored vector reads."""
        return f"{self.where}: {PRECISION_LAYOUTS[precision]}"

    def check_available(self) -> None:
        """Raises InputError when the format's library is missing."""
        if self.needs is not None:
            self.needs()


def _write_npy(folder: Path, stem: str, vectors: np.ndarray, rows: np.ndarray, precision: str) -> dict[str, Path]:
    files = {"vectors": folder / f"{stem}.npy", "rows": folder / f"{stem}.rows.npy"}
    atomic_write(files["vectors"], lambda f: np.save(f, vectors, allow_pickle=False))
    atomic_write(files["rows"], lambda f: np.save(f, rows, allow_pickle=False))
    return files


def _read_npy(files: dict[str, Path], precision: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    return np.load(files["vectors"], allow_pickle=False), np.load(files["rows"], allow_pickle=False)


def _write_parquet(folder: Path, stem: str, vectors: np.ndarray, rows: np.ndarray, precision: str,
                   ) -> dict[str, Path]:
    import pyarrow as pa

    pq = pyarrow_parquet("--format parquet")
    columns = {
        "row": pa.array(rows["row"]),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1]),
        "tokens": pa.array(rows["tokens"]),
        "truncated": pa.array(rows["truncated"]),
    }
    if precision == "int8":
        columns["scale"] = pa.array(rows["scale"])
    table = pa.table(columns)
    path = folder / f"{stem}.parquet"
    atomic_write(path, lambda f: pq.write_table(table, f))
    return {"table": path}


def _read_parquet(files: dict[str, Path], precision: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    table = pyarrow_parquet("reading parquet shards").read_table(files["table"])
    flat = table.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    vectors = np.ascontiguousarray(flat).reshape(table.num_rows, width)
    rows = np.empty(table.num_rows, dtype=row_dtype(precision))
    for name in rows.dtype.names or ():
        rows[name] = table.column(name).to_numpy()
    return vectors, rows


# the one table of shard formats; insertion order is the CLI's order, the first is the default
SHARD_WRITERS: dict[str, ShardFormat] = {
    "npy": ShardFormat("npy", _write_npy, _read_npy, "shard-*.npy", "npy (vectors + row records)"),
    "parquet": ShardFormat("parquet", _write_parquet, _read_parquet, "the 'embedding' column",
                           "parquet (one table per shard; needs pyarrow)",
                           needs=lambda: pyarrow_parquet("--format parquet")),
}
SHARD_FORMATS: tuple[str, ...] = tuple(SHARD_WRITERS)


def shard_format(name: str) -> ShardFormat:
    """The format called ``name``.

    Raises:
        InputError: an unknown format, naming the known ones.
    """
    try:
        return SHARD_WRITERS[name]
    except KeyError:
        raise InputError(f"format={name!r} is unknown; use one of {', '.join(SHARD_FORMATS)}") from None


def formats_help() -> str:
    """``--format``'s help: every format's one line."""
    return "shard files: " + ", ".join(f.help for f in SHARD_WRITERS.values())


def write_shard(folder: Path, index: int, vectors: np.ndarray, rows: np.ndarray, precision: str, fmt: str,
                ) -> dict[str, dict[str, Any]]:
    """Write shard ``index`` in format ``fmt``; returns its manifest entry per file (name, bytes, sha256)."""
    files = shard_format(fmt).write(folder, f"{SHARD_PREFIX}{index:05d}", vectors, rows, precision)
    return {k: {"name": p.name, "bytes": p.stat().st_size, "sha256": file_digest(p)[0]} for k, p in files.items()}


def load_folder(folder: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """All vectors and row records of a complete shard folder, in input order (checksums verified).

    Returns:
        ``(vectors, rows)``: ``(N, stored width)`` in the stored dtype, and ``(N,)`` records of
        :func:`row_dtype` (``row``, ``tokens``, ``truncated``, ``scale`` for int8).

    Raises:
        InputError: an incomplete run, a file whose checksum differs, or a parquet folder
            without pyarrow.
    """
    root = Path(folder)
    manifest = read_manifest(root)
    if not manifest["complete"]:
        raise InputError(f"{str(root)!r} holds an incomplete run ({manifest['rows_done']} rows); "
                         "finish it with `bertzoo embed ... --resume`")
    fmt = shard_format(manifest["options"]["format"])
    precision = manifest["options"]["precision"]
    width = manifest["output"]["stored_width"]
    vectors: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    for shard in manifest["shards"]:
        files: dict[str, Path] = {}
        for role, entry in shard["files"].items():
            files[role] = root / entry["name"]
            if file_digest(files[role])[0] != entry["sha256"]:
                raise InputError(f"{entry['name']} in {str(root)!r} does not match its checksum; it was changed "
                                 "after it was written: re-run the job into a new folder")
        shard_vectors, shard_rows = fmt.read(files, precision, width)
        vectors.append(shard_vectors)
        rows.append(shard_rows)
    dtype = np.dtype(manifest["output"]["dtype"])
    return (np.concatenate(vectors) if vectors else np.empty((0, width), dtype),
            np.concatenate(rows) if rows else np.empty(0, dtype=row_dtype(precision)))


__all__ = ["DEFAULT_FORMAT", "DEFAULT_SHARD_SIZE", "SHARD_FORMATS", "SHARD_WRITERS", "ShardFormat", "formats_help",
           "load_folder", "row_dtype", "shard_format", "write_shard"]
