"""``bertzoo embed``: sentence vectors as JSON lines, a ``.npy``/``.jsonl``/``.parquet`` file, or a folder of shards.

JSON lines are records (each text with its vector, token count and truncation flag, floats exact)
or, with ``--format jsonl``, compact (the vector only, floats as float32's shortest round-trip
repr; see :mod:`bertzoo.cli._output`). ``--output FILE.parquet`` writes one table: ``text``,
``embedding`` (fixed-size lists of the stored precision), ``tokens``, ``truncated`` (and ``scale``).

``--output DIR/`` (a trailing slash, an existing folder, or no suffix) streams instead: the
``--input`` file (``.txt``, ``.jsonl`` or ``.parquet``) is scanned, then read lazily into
numbered shards plus ``manifest.json``, and ``--resume`` continues a killed run (see
:mod:`bertzoo.corpus`). ``--engine ray`` runs the embedding on a Ray cluster and writes the same
folder (see :mod:`bertzoo.integrations.ray_corpus`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertzoo.cli._common import (
    LazyChoices,
    LazyValue,
    add_input_options,
    add_model_options,
    check_output,
    emit,
    module_choices,
    read_input_texts,
    run_options,
    say,
    use_piped_stdin,
    warnings_to_stderr,
    write_output,
)
from bertzoo.cli._input import table_delimiter
from bertzoo.cli._output import RECORD_FORMATS, emit_lines, float32_text, write_parquet
from bertzoo.errors import InputError

if TYPE_CHECKING:
    import numpy as np

ARRAY_SUFFIXES = (".npy", ".jsonl", ".parquet")
FILE_FORMATS = {".npy": "npy", ".parquet": "parquet"}  # any other single output is JSON lines


def is_folder_output(path: str | None) -> bool:
    """``--output DIR/`` (a trailing separator, an existing folder, or no suffix) switches to sharded output."""
    if path is None or path == "-":
        return False
    return path.endswith(("/", os.sep)) or Path(path).is_dir() or not Path(path).suffix


def _shard_formats() -> tuple[str, ...]:
    from bertzoo.corpus.shards import SHARD_FORMATS

    return tuple(SHARD_FORMATS)


def folder_format(args: argparse.Namespace) -> str:
    """The shard format of ``--output DIR/`` (default npy).

    Raises:
        InputError: a JSON-lines format, which only a single output takes.
    """
    if args.format in RECORD_FORMATS:
        raise InputError(f"--format {args.format} writes JSON lines to one file or stdout; --output DIR/ writes "
                         f"shards: --format {' or '.join(_shard_formats())}")
    return args.format or "npy"


def file_format(args: argparse.Namespace) -> str:
    """What a single output holds: ``npy`` or ``parquet`` (by its suffix), else ``records`` or ``jsonl``.

    Raises:
        InputError: a ``--format`` the output's suffix contradicts.
    """
    suffix = Path(args.output).suffix if args.output not in (None, "-") else ""
    by_suffix = FILE_FORMATS.get(suffix)
    if by_suffix is not None:
        if args.format not in (None, by_suffix):
            raise InputError(f"--output {args.output!r} is {by_suffix} (by its suffix), not --format {args.format}; "
                             "give FILE.jsonl (or '-' for stdout) for JSON lines")
        return by_suffix
    if args.format not in (None, *RECORD_FORMATS):
        raise InputError(f"--format {args.format} is a shard format: give --output DIR/, or FILE.{args.format}")
    return args.format or "records"


def refuse_single_output_options(args: argparse.Namespace) -> None:
    """Options only a single output takes (the folder jobs apply the model's default prompt themselves)."""
    given = [flag for flag, value in (("--prompt", args.prompt), ("--prompt-name", args.prompt_name),
                                      ("--truncate-dim", args.truncate_dim)) if value is not None]
    if given:
        raise InputError(f"{', '.join(given)} apply to a single output (stdout, FILE.jsonl, .npy or .parquet), not "
                         "yet to --output DIR/; use --dim N for shorter vectors there")


def refuse_table_input(args: argparse.Namespace) -> None:
    """A folder job streams its input; CSV / TSV is read whole, so it is refused there (with the fix)."""
    if table_delimiter(args.input) is not None:
        raise InputError(f"--output DIR/ streams .txt, .jsonl or .parquet input; {args.input!r} is a CSV / TSV "
                         "table: convert it (e.g. to .parquet) or write a single --output FILE")


def _embed_to_folder(args: argparse.Namespace) -> int:
    from bertzoo.corpus import MANIFEST, InputSource, embed_to_folder

    if args.texts or args.input is None:
        raise InputError("--output DIR/ embeds a file: give it with --input FILE (.txt, .jsonl or .parquet), "
                         "not as arguments")
    refuse_table_input(args)
    refuse_single_output_options(args)
    source = InputSource.from_path(args.input, args.field, max_line_bytes=args.max_line_bytes)
    args.resumable_folder = args.output  # a failure from here on ends with the --resume hint (cli._errors)
    # sizes not given take embed_to_folder's defaults, which bertzoo.corpus owns
    sizes = {name: value for name, value in (("shard_size", args.shard_size), ("chunk_size", args.chunk_size))
             if value is not None}
    with warnings_to_stderr():
        manifest = embed_to_folder(
            source, args.output, args.model, resume=args.resume, format=folder_format(args), truncate=args.truncate,
            normalize=args.normalize, dim=args.dim, precision=args.precision, say=say, **sizes,
            **_no_random_head(run_options(args)),
        )
    say(f"wrote {manifest['rows_done']:,} x {manifest['output']['dimension']} {args.precision} embeddings "
        f"in {len(manifest['shards'])} shards to {args.output} ({MANIFEST})")
    return 0


def _embed_to_folder_ray(args: argparse.Namespace) -> int:
    from bertzoo.corpus import MANIFEST
    from bertzoo.integrations.ray_corpus import RayOptions, embed_to_folder_ray

    if args.texts or args.input is None or args.input == "-":
        raise InputError("--engine ray embeds files: give them with --input FILE|DIR|GLOB (.txt, .jsonl or .parquet)")
    refuse_table_input(args)
    refuse_single_output_options(args)
    args.resumable_folder = args.output  # a failure from here on ends with the --resume hint (cli._errors)
    sizes = {name: value for name, value in (("shard_size", args.shard_size), ("chunk_size", args.chunk_size))
             if value is not None}
    options = _no_random_head(run_options(args, auto_device=False))  # the actors' GPUs come from --ray-gpus
    ray_options = RayOptions(actors=args.ray_actors, num_cpus=args.ray_cpus, num_gpus=args.ray_gpus)
    with warnings_to_stderr():
        manifest = embed_to_folder_ray(
            args.input, args.output, args.model, field=args.field, max_line_bytes=args.max_line_bytes,
            resume=args.resume, format=folder_format(args), truncate=args.truncate, normalize=args.normalize,
            dim=args.dim, precision=args.precision, say=say, ray_options=ray_options, **sizes, **options,
        )
    say(f"wrote {manifest['rows_done']:,} x {manifest['output']['dimension']} {args.precision} embeddings "
        f"in {len(manifest['shards'])} shards to {args.output} ({MANIFEST})")
    return 0


def _no_random_head(options: dict[str, Any]) -> dict[str, Any]:
    """The folder jobs' options: the embedding head has no weights to miss, so the switch is not passed on."""
    options.pop("allow_random_head", None)
    return options


def run(args: argparse.Namespace) -> int:
    use_piped_stdin(args)
    if args.engine == "ray":
        if not is_folder_output(args.output):
            raise InputError("--engine ray writes a shard folder: give it with --output DIR/")
        return _embed_to_folder_ray(args)
    if is_folder_output(args.output):
        return _embed_to_folder(args)
    if args.resume:
        raise InputError("--resume continues a sharded run: give the folder with --output DIR/")
    check_output(args.output, ARRAY_SUFFIXES, inputs=(args.input,))
    fmt = file_format(args)
    if args.dim is not None and args.truncate_dim is not None:
        raise InputError("give --dim N (cut, then renormalise) or --truncate-dim N (sentence-transformers' cut), "
                         "not both")
    if args.precision == "int8" and fmt == "npy":
        raise InputError("--precision int8 stores a scale per vector, which one .npy file cannot hold; "
                         "write to a folder (--output DIR/), to .parquet or to .jsonl")
    texts = read_input_texts(args)
    import torch

    from bertzoo.inference.pipeline import get_pipeline
    from bertzoo.inference.vectors import check_output_options, shape_vectors

    options = run_options(args)
    batch_tokens, progress, threads = options.pop("batch_tokens"), options.pop("progress"), options.pop("threads")
    pipe = get_pipeline("embed", args.model, **options)
    check_output_options(pipe.dimension, args.dim, args.precision)
    normalize = pipe.embedding_normalize if args.normalize is None else args.normalize
    # --truncate-dim cuts as sentence-transformers does (after the model's normalisation, not renormalised
    # unless --normalize); without it the vectors come raw and shape_vectors normalises (after --dim)
    truncate_dim = args.truncate_dim
    width = pipe.dimension if truncate_dim is None else min(truncate_dim, pipe.dimension)
    with warnings_to_stderr():
        if texts:
            fitted = pipe.encode_for_embedding(texts, args.truncate, prompt=args.prompt, prompt_name=args.prompt_name)
            raw = pipe.embed_encoded(fitted, batch_tokens=batch_tokens, progress=progress, threads=threads,
                                     normalize=args.normalize if truncate_dim else False, truncate_dim=truncate_dim)
            tokens, cut = fitted.tokens.tolist(), fitted.truncated.tolist()
        else:
            raw, tokens, cut = torch.empty((0, width)), [], []
    shaped = shape_vectors(raw, normalize=normalize and not truncate_dim, dim=args.dim, precision=args.precision)
    vectors = shaped.values
    scales = shaped.scales.tolist() if shaped.scales is not None else None
    if fmt == "npy":
        import numpy as np

        write_output(args.output, lambda f: np.save(f, vectors))
        say(f"wrote {vectors.shape[0]} x {vectors.shape[1]} embeddings to {args.output}")
    elif fmt == "parquet":
        _write_parquet(args.output, texts, vectors, tokens, cut, scales)
        say(f"wrote {vectors.shape[0]} x {vectors.shape[1]} embeddings to {args.output}")
    elif fmt == "jsonl":
        _emit_compact(vectors, scales, args.output)
    else:
        def record(i: int) -> dict[str, Any]:
            out = {"text": texts[i], "embedding": vectors[i].tolist(), "tokens": tokens[i], "truncated": cut[i]}
            if scales is not None:
                out["scale"] = scales[i]
            return out

        emit((record(i) for i in range(len(texts))), args.output)
    return 0


def _write_parquet(path: str, texts: list[str], vectors: np.ndarray, tokens: list[int], cut: list[bool],
                   scales: list[float] | None) -> None:
    """One parquet table: ``text``, ``embedding`` (fixed-size lists), ``tokens``, ``truncated`` (, ``scale``)."""
    from bertzoo.cli._output import parquet_module

    parquet_module(f"--output {path}")
    import pyarrow as pa

    columns = {
        "text": pa.array(texts, pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1]),
        "tokens": pa.array(tokens, pa.int32()),
        "truncated": pa.array(cut, pa.bool_()),
    }
    if scales is not None:
        columns["scale"] = pa.array(scales, pa.float32())
    write_parquet(path, pa.table(columns))


def _emit_compact(vectors: np.ndarray, scales: list[float] | None, output: str | None) -> None:
    """``{"embedding": [...]}`` per text (and ``scale``), each number as its dtype's shortest round-trip repr."""
    text = vectors.astype(str)  # numpy's shortest repr that reads back to the same float32 (float16, int)
    lines = []
    for i in range(len(text)):
        scale = f', "scale": {float(float32_text(scales[i]))!r}' if scales is not None else ""
        lines.append('{"embedding": [' + ", ".join(text[i].tolist()) + "]" + scale + "}\n")
    emit_lines(lines, output)


def add_prompt_options(p: argparse.ArgumentParser) -> None:
    """``--prompt`` and ``--prompt-name`` (sentence-transformers' ``prompt=`` / ``prompt_name=``)."""
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", default=None, metavar="TEXT",
                        help="text prepended to every input, e.g. 'query: ' ('' = none, not even the model's default)")
    prompt.add_argument("--prompt-name", default=None, metavar="NAME",
                        help="one of the prompts the model's config_sentence_transformers.json names (default: its "
                             "default_prompt_name, if any)")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("embed", help="sentence embeddings (JSON lines on stdout, or .npy/.jsonl)",
                              description="Embed texts with a sentence-embedding model (default all-MiniLM-L6-v2).")
    add_input_options(p, arrays=True, formats=False)
    add_model_options(p)
    norm = p.add_mutually_exclusive_group()
    norm.add_argument("--normalize", dest="normalize", action="store_true", default=None,
                      help="L2-normalise (default: as the model says)")
    norm.add_argument("--no-normalize", dest="normalize", action="store_false", help="do not L2-normalise")
    # a metavar keeps argparse from reading lazy choices while the parser is built
    p.add_argument("--truncate", default="warn", metavar="POLICY",
                   choices=module_choices("bertzoo.inference.truncation", "TRUNCATE_POLICIES"),
                   help="%(choices)s; texts longer than the model's maximum length: stop (error), cut with one warning line "
                        "(warn, default), cut quietly (silent), or embed as windows averaged (chunk)")
    add_prompt_options(p)
    p.add_argument("--dim", type=int, default=None, metavar="N",
                   help="keep the first N dimensions (Matryoshka-style), re-normalised")
    p.add_argument("--truncate-dim", type=int, default=None, metavar="N",
                   help="keep the first N dimensions as sentence-transformers' truncate_dim does: cut after the "
                        "model's normalisation, so no longer unit length (--normalize renormalises)")
    p.add_argument("--precision", default="float32", metavar="NAME",
                   choices=module_choices("bertzoo.inference.vectors", "PRECISIONS"),
                   help="%(choices)s; stored precision: float32, float16, int8 (per-vector scale) or binary (packed sign bits)")
    shards = p.add_argument_group("sharded output (--output DIR/)")
    shards.add_argument("--resume", action="store_true",
                        help="continue an interrupted run in DIR after its last complete shard")
    shard_size = shards.add_argument("--shard-size", type=int, default=None, metavar="ROWS",
                                     help="rows per shard (default %(corpus_default)s)")
    shard_size.corpus_default = LazyValue("bertzoo.corpus.shards", "DEFAULT_SHARD_SIZE")  # type: ignore[attr-defined]
    chunk_size = shards.add_argument("--chunk-size", type=int, default=None, metavar="TEXTS",
                                     help="texts read, tokenized and length-sorted together (default %(corpus_default)s)")
    chunk_size.corpus_default = LazyValue("bertzoo.corpus.stream", "DEFAULT_CHUNK_SIZE")  # type: ignore[attr-defined]
    p.add_argument("--format", default=None, metavar="FORMAT",
                   choices=LazyChoices(lambda: (*RECORD_FORMATS, *_shard_formats())),
                   help="%(choices)s; JSON lines on stdout or in FILE.jsonl: records (default: each text with its "
                        "vector, token count and truncation, floats exact) or jsonl (compact: the vector only, "
                        "floats as the shortest decimal that reads back to the same float32); shard files of "
                        "--output DIR/: npy (default; vectors + row records) or parquet (needs pyarrow); a single "
                        "FILE.npy or FILE.parquet by its suffix")
    engine = p.add_argument_group("engine (--output DIR/)")
    engine.add_argument("--engine", default="local", choices=("local", "ray"),
                        help="local (this process, default) or ray: the embedding runs on the Ray cluster named by "
                             "RAY_ADDRESS (else a local one started for the run); --input may then be a folder or a "
                             "glob; the folder and manifest are the same (pip install 'bertzoo[ray]'; docs/ray.md)")
    engine.add_argument("--ray-actors", type=int, default=None, metavar="N",
                        help="actors, each with one loaded model (default: the cluster's CPUs, or GPUs, per actor)")
    engine.add_argument("--ray-cpus", type=float, default=1, metavar="N", help="CPUs per actor (default 1)")
    engine.add_argument("--ray-gpus", type=float, default=0, metavar="N",
                        help="GPUs per actor (default 0; 1 runs each actor on its own GPU)")
    p.set_defaults(func=run)
