"""Where a command's texts come from: its arguments, ``--input FILE``, or text piped to stdin.

``--input`` reads plain text (one text per line), JSON lines (``.jsonl`` or ``--field``), parquet,
or a table with a header row: CSV (``.csv``) or TSV (``.tsv``, ``.tab``), whose ``--field`` column
(default ``text``) holds the texts. With no texts and no ``--input``, text piped to stdin is read as
``--input -`` would read it (``printf 'a\\nb\\n' | bertzoo embed``); a terminal is never waited on.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from typing import Any

from bertzoo.errors import InputError

TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}


def table_delimiter(path: str | None) -> str | None:
    """The delimiter of a CSV / TSV ``--input`` (by suffix), None for other inputs."""
    if path is None:
        return None
    return next((d for suffix, d in TABLE_DELIMITERS.items() if path.lower().endswith(suffix)), None)


def stdin_is_piped() -> bool:
    """Whether stdin is a pipe or a file to read (not a terminal, not closed, not a test's stand-in)."""
    stdin = sys.stdin
    if stdin is None or getattr(stdin, "closed", False):
        return False
    try:
        return not stdin.isatty() and stdin.readable()
    except (OSError, ValueError):
        return False


def use_piped_stdin(args: argparse.Namespace) -> bool:
    """``--input -`` when no texts and no ``--input`` were given and text is piped to stdin; returns
    whether it was (now or by an earlier call)."""
    if args.input is None and not args.texts and stdin_is_piped():
        args.input = "-"
        args.piped_stdin = True  # read_input_texts: empty piped stdin is "no texts", not zero rows
    return bool(getattr(args, "piped_stdin", False))


def read_table(path: str, delimiter: str, *, field: str | None, pair_field: str | None = None,
               max_line_bytes: int | None = None) -> list[Any]:
    """The ``field`` column (and ``pair_field``, as ``(text, pair)``) of a CSV / TSV file with a header row.

    Raises:
        InputError: an unreadable file, invalid UTF-8, no header, a column the header lacks (naming
            the columns it has), a row without that cell, or a cell over ``max_line_bytes`` (naming its line).
    """
    from bertzoo.corpus.sources import DEFAULT_MAX_LINE_BYTES, check_encodable

    name = "stdin" if path == "-" else path
    column = field or "text"
    limit = DEFAULT_MAX_LINE_BYTES if max_line_bytes is None else int(max_line_bytes)
    try:
        if path == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                raw = f.read()
    except OSError as exc:
        raise InputError(f"cannot read --input {name!r} ({exc.strerror or exc}); check the path") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{name} line {line} is not valid UTF-8 (byte {exc.start}); convert the file to UTF-8 "
                         "(e.g. `iconv -f latin1 -t utf-8`)") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    previous = csv.field_size_limit(limit)
    try:
        return _table_rows(reader, name, column, pair_field, limit, check_encodable)
    except csv.Error as exc:
        raise InputError(f"{name} line {reader.line_num} is not valid {'TSV' if delimiter == chr(9) else 'CSV'} "
                         f"({exc}); fix the line, or raise --max-line-bytes for a longer cell") from None
    finally:
        csv.field_size_limit(previous)


def _table_rows(reader: Any, name: str, column: str, pair_field: str | None, limit: int, check: Any) -> list[Any]:
    header = next(reader, None)
    if not header:
        raise InputError(f"{name} is empty: a CSV / TSV input needs a header row naming its columns")
    wanted = [column] + ([pair_field] if pair_field is not None else [])
    for want in wanted:
        if want not in header:
            flag = "--field" if want == column else "--pair-field"
            raise InputError(f"{name} has no column {want!r}; its columns are {', '.join(map(repr, header))}: "
                             f"name the one holding the text with {flag}")
    at = [header.index(w) for w in wanted]
    out: list[Any] = []
    for row in reader:
        if not row:
            continue  # a blank line
        if len(row) <= max(at):
            raise InputError(f"{name} line {reader.line_num} has {len(row)} cells, fewer than the header's "
                             f"{len(header)}; fix the row")
        cells = [row[i] for i in at]
        for cell in cells:
            if len(cell.encode("utf-8", "surrogatepass")) > limit:
                raise InputError(f"{name} line {reader.line_num} holds a cell over {limit:,} bytes; raise "
                                 "--max-line-bytes to read it")
        out.append(cells[0] if pair_field is None else (cells[0], cells[1]))
    return out


def read_input_texts(args: argparse.Namespace, *, pairs: bool = False, what: str = "texts") -> list[Any]:
    """Texts from the positional arguments, from ``--input`` (with ``--pair``/``--pair-field`` for pairs),
    or from text piped to stdin.

    Raises:
        InputError: both arguments and ``--input`` given, no texts at all, or a bad input line (naming it).
    """
    from bertzoo.corpus.sources import read_texts

    if args.input is not None and args.texts:
        raise InputError(f"give {what} as arguments or with --input FILE, not both")
    piped = use_piped_stdin(args)
    pair_field = getattr(args, "pair_field", None) if pairs else None
    texts: list[Any]
    if args.input is not None:
        delimiter = table_delimiter(args.input)
        if delimiter is not None:
            texts = read_table(args.input, delimiter, field=args.field, pair_field=pair_field,
                               max_line_bytes=args.max_line_bytes)
        else:
            texts = read_texts(args.input, field=args.field, pair_field=pair_field, max_line_bytes=args.max_line_bytes)
        if texts or not piped:  # an empty --input FILE is no texts to process; empty stdin is no input
            return texts
    elif pairs and args.texts and getattr(args, "pair", None) is not None:
        return [(t, args.pair) for t in args.texts]
    elif args.texts:
        return list(args.texts)
    raise InputError(f"no {what}: pass them as arguments (bertzoo {args.command} \"some text\"), with --input FILE, "
                     "or piped to stdin")


__all__ = ["TABLE_DELIMITERS", "read_input_texts", "read_table", "stdin_is_piped", "table_delimiter",
           "use_piped_stdin"]
