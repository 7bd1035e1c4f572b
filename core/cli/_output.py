"""Where a command's results go: JSON lines on stdout (``-o -`` too), or an ``--output`` file written atomically.

Formats:

- ``records`` (the default): one JSON object per input, echoing its text, floats written exactly
  (the shortest decimal that reads back to the same float64).
- ``jsonl`` (``--format jsonl``): compact JSON lines: the echoed text left out (``text``,
  ``text_pair``, ``document``) and floats written as the shortest decimal that reads back to the
  same float32 (numpy's shortest round-trip repr): ``0.1`` rather than ``0.10000000149011612``.
  The vectors are computed in float32, so this loses nothing: read back as float32 they are
  bit-identical to ``--output FILE.npy``.
- parquet (``--output FILE.parquet``, needs pyarrow): one table, one row per input; written to a
  temporary file and renamed into place like every output.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from bertzoo.errors import InputError

RECORD_FORMATS = ("records", "jsonl")
# keys that echo the input; --format jsonl leaves them out
ECHO_KEYS = frozenset({"text", "text_pair", "document"})

_QUIET = [False]  # set by quiet_output() for --quiet; read by say()


def is_quiet() -> bool:
    return _QUIET[0]


def set_quiet(quiet: bool) -> bool:
    """Turn the informational stderr lines off (``--quiet``); returns the previous setting."""
    before, _QUIET[0] = _QUIET[0], bool(quiet)
    return before


def say(message: str) -> None:
    """One ``bertzoo: ...`` line on stderr, unless ``--quiet``."""
    if not _QUIET[0]:
        print(f"bertzoo: {message}", file=sys.stderr)


def is_stdout(path: str | None) -> bool:
    return path is None or path == "-"


def write_output(path: str, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``--output`` atomically through ``write(fileobj)``, after checking the target.

    Raises:
        InputError: the target is a folder, or its folder does not exist.
    """
    from bertzoo._fs import atomic_write

    target = Path(path)
    if target.is_dir():
        raise InputError(f"--output {str(target)!r} is a folder; give a file path ending in .npy or .jsonl")
    if not target.parent.is_dir():
        raise InputError(f"--output folder {str(target.parent)!r} does not exist; create it first")
    return atomic_write(target, write)


def float32_text(value: float) -> str:
    """The shortest decimal that reads back to the same float32 (``0.1``, ``1e-05``)."""
    import numpy as np

    return str(np.float32(value))


def _compact_value(value: Any) -> Any:
    if isinstance(value, float):
        return float(float32_text(value))  # its float64 repr is this short text: json writes it as is
    if isinstance(value, dict):
        return {k: _compact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact_value(v) for v in value]
    return value


def compact(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` without its echoed text, floats at float32's shortest round-trip repr."""
    return {k: _compact_value(v) for k, v in record.items() if k not in ECHO_KEYS}


def _jsonl_bytes(records: Iterable[dict[str, Any]], fmt: str) -> Iterator[bytes]:
    for record in records:
        if fmt == "jsonl":
            record = compact(record)
        yield (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def parquet_module(what: str) -> Any:
    """``pyarrow.parquet``, or an InputError saying that ``what`` needs pyarrow."""
    from bertzoo.corpus.sources import pyarrow_parquet

    return pyarrow_parquet(what)


def write_parquet(path: str, table: Any) -> None:
    """Write a pyarrow table to ``path`` atomically."""
    pq = parquet_module(f"--output {path}")
    write_output(path, lambda f: pq.write_table(table, f))


def emit_lines(lines: Iterable[str], output: str | None) -> None:
    """Lines (each ending in a newline) on stdout (``output`` None or ``-``), or into ``output`` atomically."""
    if is_stdout(output):
        for line in lines:
            sys.stdout.write(line)
        sys.stdout.flush()
        return
    assert output is not None
    rows = list(lines)

    def write(f: IO[bytes]) -> None:
        for line in rows:
            f.write(line.encode("utf-8"))

    write_output(output, write)
    say(f"wrote {len(rows)} rows to {output}")


def emit(records: Iterable[dict[str, Any]], output: str | None, fmt: str = "records") -> None:
    """JSON lines on stdout (``output`` None or ``-``), or into ``output`` (.jsonl, or .parquet: one
    table), computed in full before the file is opened."""
    if output is not None and output.endswith(".parquet"):
        parquet_module(f"--output {output}")
        import pyarrow as pa

        rows = list(records)
        write_parquet(output, pa.Table.from_pylist(rows))
        say(f"wrote {len(rows)} rows to {output}")
        return
    emit_lines((line.decode("utf-8") for line in _jsonl_bytes(records, fmt)), output)


__all__ = ["ECHO_KEYS", "RECORD_FORMATS", "compact", "emit", "emit_lines", "float32_text", "is_quiet", "is_stdout", "say",
           "set_quiet", "write_output", "write_parquet"]
