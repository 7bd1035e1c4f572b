"""Input files read lazily, row by row: plain text, JSON lines and parquet.

Every reader names the line (or row) of a bad input and how to fix it, and reports where the
next row starts (a byte offset, or a row number for parquet) so a stopped job can restart there.

Memory is bounded by the line limit, not by the input: a line (or parquet text) longer than
``max_line_bytes`` (default :data:`DEFAULT_MAX_LINE_BYTES`, 1 MiB) is refused, naming it, without
being read whole. A 20 MB line would otherwise take about 2 GB to tokenize; raise the limit
(``--max-line-bytes``) for documents that must be embedded whole. A JSON ``\\ud800``-style escape
that decodes to a lone surrogate (half of a UTF-16 pair, which no encoder accepts) is refused
too, so the scan of a folder job catches it before any shard is written.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from bertzoo.corpus.manifest import file_digest
from bertzoo.errors import InputError

_PARQUET_BATCH_ROWS = 4096  # rows converted to Python at a time: bounded memory on huge files
DEFAULT_MAX_LINE_BYTES = 1 << 20  # ~100 MB to tokenize; a book-length line needs the limit raised on purpose
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def check_encodable(text: str, what: str) -> None:
    """Refuse a string holding a lone surrogate (JSON can carry one; the tokenizer and UTF-8 cannot).

    Raises:
        InputError: naming ``what`` (e.g. ``"data.jsonl line 7 field 'text'"``) and the character.
    """
    if text.isascii():
        return
    found = _SURROGATE.search(text)
    if found is not None:
        raise InputError(
            f"{what} holds a lone surrogate (U+{ord(found.group()):04X} at character {found.start()}): half of a "
            "UTF-16 pair, not a character, which cannot be encoded; fix what wrote it (a string cut between the "
            "two halves of a pair?) or remove that escape"
        )


def line_too_long(where: str, limit: int) -> InputError:
    """The error for a line (or parquet text) over ``max_line_bytes``; ``where`` names it."""
    return InputError(
        f"{where} is longer than {limit:,} bytes (max_line_bytes, which keeps memory bounded: a "
        "20 MB line takes about 2 GB to tokenize); split the text, or raise the limit with --max-line-bytes N "
        "(max_line_bytes=N) if it must be embedded whole"
    )


def pyarrow_parquet(what: str) -> Any:
    """``pyarrow.parquet``, or an InputError saying that ``what`` needs it."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{what} needs pyarrow, which is not installed; `pip install pyarrow`, "
                         "or use .txt / .jsonl input and --format npy") from None
    return pq


@dataclass(frozen=True)
class InputSource:
    """An input file read lazily, row by row.

    Attributes:
        path: the file, or ``"-"`` for stdin (read once: no scan, no resume).
        format: ``"text"`` (one text per line, blank lines kept as empty texts), ``"jsonl"``
            (blank lines skipped) or ``"parquet"``.
        field: the JSON-lines field / parquet column holding the text (default ``"text"``).
        pair_field: a second field read as the pair of each text (``classify``); JSON lines only.
        max_line_bytes: the longest line (a parquet text: its UTF-8 bytes) accepted; longer ones
            are refused, naming them, without being read whole.
    """

    path: str
    format: str
    field: str = "text"
    pair_field: str | None = None
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES

    def __post_init__(self) -> None:
        if self.max_line_bytes < 1:
            raise InputError(f"max_line_bytes={self.max_line_bytes} must be at least 1")

    @classmethod
    def from_path(cls, path: str, field: str | None = None, *, jsonl: bool | None = None,
                  pair_field: str | None = None, max_line_bytes: int | None = None) -> InputSource:
        """The source for ``path``: parquet by suffix, JSON lines by suffix or when ``field`` is given."""
        if str(path).endswith(".parquet"):
            fmt = "parquet"
        elif jsonl if jsonl is not None else (field is not None or str(path).endswith((".jsonl", ".ndjson"))):
            fmt = "jsonl"
        else:
            fmt = "text"
        if pair_field is not None and fmt != "jsonl":
            raise InputError(f"--pair-field needs JSON lines; {path!r} is read as {fmt}")
        return cls(str(path), fmt, field or "text", pair_field,
                   DEFAULT_MAX_LINE_BYTES if max_line_bytes is None else int(max_line_bytes))

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
            InputError: an unreadable file or a bad line (named by its number), a line over
                ``max_line_bytes`` included.
        """
        if self.format == "parquet":
            yield from self._parquet_rows(offset)
            return
        limit = self.max_line_bytes
        f = self._open()
        try:
            if offset:
                f.seek(offset)
            position = offset
            # readline(limit + 1): a giant line is refused after limit + 1 bytes, never read whole
            while raw := f.readline(limit + 1):
                if len(raw) > limit and not raw.endswith(b"\n"):
                    raise line_too_long(f"{self.name} line {line}", limit)
                position += len(raw)
                text = parse_line(raw, line, self.name, self.format == "jsonl", self.field, self.pair_field)
                line += 1
                if text is not None:
                    yield text, position, line
        finally:
            if f is not sys.stdin.buffer:
                f.close()

    def _parquet_file(self) -> Any:
        pq = pyarrow_parquet("reading --input " + self.name)
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
        limit = self.max_line_bytes
        for batch in pf.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=[self.field], row_groups=groups):
            for value in batch.column(0).to_pylist():
                if row >= skip:
                    if value is None:
                        raise InputError(f"{self.name} row {row} has no text (null in column {self.field!r}); "
                                         "drop or fill the null rows")
                    if len(value) * 4 > limit and len(value.encode("utf-8")) > limit:  # encode only when it may be
                        raise line_too_long(f"{self.name} row {row}", limit)
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
        InputError: invalid UTF-8, bad JSON, a missing / non-string field, or a JSON escape that
            decodes to a lone surrogate, naming the line.
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
    escaped = b"\\u" in raw  # only a \uXXXX escape can carry a surrogate: strict UTF-8 decoding refuses one
    if escaped:
        check_encodable(record[field], f"{name} line {number} field {field!r}")
    if pair_field is None:
        return record[field]
    pair = record.get(pair_field)
    if not isinstance(pair, str):
        raise InputError(f"{name} line {number} has no string field {pair_field!r} for --pair-field")
    if escaped:
        check_encodable(pair, f"{name} line {number} field {pair_field!r}")
    return record[field], pair


def read_texts(path: str, *, field: str | None = None, jsonl: bool | None = None,
               pair_field: str | None = None, max_line_bytes: int | None = None) -> list[Any]:
    """Texts of an input file: one per line, or one per JSON line (``field``, and ``pair_field`` for pairs).

    Plain files keep every line (blank ones embed as empty strings) so output row i is line i;
    JSON-lines files skip blank lines.

    Raises:
        InputError: unreadable file, invalid UTF-8, bad JSON, a missing / non-string field, a lone
            surrogate or a line over ``max_line_bytes`` (default 1 MiB) (the message names the line).
    """
    source = InputSource.from_path(path, field, jsonl=jsonl, pair_field=pair_field, max_line_bytes=max_line_bytes)
    return [text for text, _, _ in source.rows()]


__all__ = ["DEFAULT_MAX_LINE_BYTES", "InputSource", "check_encodable", "line_too_long", "parse_line", "pyarrow_parquet",
           "read_texts"]
