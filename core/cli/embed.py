"""``bertzoo embed``: sentence vectors as JSON lines, a ``.npy``/``.jsonl`` file, or a folder of shards.

``--output DIR/`` (a trailing slash, an existing folder, or no suffix) streams instead: the
``--input`` file (``.txt``, ``.jsonl`` or ``.parquet``) is scanned, then read lazily into
numbered shards plus ``manifest.json``, and ``--resume`` continues a killed run (see
:mod:`bertzoo.corpus`). ``--engine ray`` runs the embedding on a Ray cluster and writes the same
folder (see :mod:`bertzoo.integrations.ray_corpus`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from bertzoo.cli._common import (
    LazyValue,
    add_input_options,
    add_model_options,
    check_output,
    emit,
    module_choices,
    read_input_texts,
    run_options,
    warnings_to_stderr,
    write_output,
)
from bertzoo.errors import InputError

ARRAY_SUFFIXES = (".npy", ".jsonl")


def is_folder_output(path: str | None) -> bool:
    """``--output DIR/`` (a trailing separator, an existing folder, or no suffix) switches to sharded output."""
    if path is None or path == "-":
        return False
    return path.endswith(("/", os.sep)) or Path(path).is_dir() or not Path(path).suffix


def _say(message: str) -> None:
    print(f"bertzoo: {message}", file=sys.stderr)


def _embed_to_folder(args: argparse.Namespace) -> int:
    from bertzoo.corpus import MANIFEST, InputSource, embed_to_folder

    if args.texts or args.input is None:
        raise InputError("--output DIR/ embeds a file: give it with --input FILE (.txt, .jsonl or .parquet), "
                         "not as arguments")
    source = InputSource.from_path(args.input, args.field, max_line_bytes=args.max_line_bytes)
    args.resumable_folder = args.output  # a failure from here on ends with the --resume hint (cli._errors)
    # sizes not given take embed_to_folder's defaults, which bertzoo.corpus owns
    sizes = {name: value for name, value in (("shard_size", args.shard_size), ("chunk_size", args.chunk_size))
             if value is not None}
    with warnings_to_stderr():
        manifest = embed_to_folder(
            source, args.output, args.model, resume=args.resume, format=args.format, truncate=args.truncate,
            normalize=args.normalize, dim=args.dim, precision=args.precision, say=_say, **sizes,
            **run_options(args),
        )
    print(f"bertzoo: wrote {manifest['rows_done']:,} x {manifest['output']['dimension']} {args.precision} embeddings "
          f"in {len(manifest['shards'])} shards to {args.output} ({MANIFEST})", file=sys.stderr)
    return 0


def _embed_to_folder_ray(args: argparse.Namespace) -> int:
    from bertzoo.corpus import MANIFEST
    from bertzoo.integrations.ray_corpus import RayOptions, embed_to_folder_ray

    if args.texts or args.input is None or args.input == "-":
        raise InputError("--engine ray embeds files: give them with --input FILE|DIR|GLOB (.txt, .jsonl or .parquet)")
    args.resumable_folder = args.output  # a failure from here on ends with the --resume hint (cli._errors)
    sizes = {name: value for name, value in (("shard_size", args.shard_size), ("chunk_size", args.chunk_size))
             if value is not None}
    options = run_options(args)
    ray_options = RayOptions(actors=args.ray_actors, num_cpus=args.ray_cpus, num_gpus=args.ray_gpus)
    with warnings_to_stderr():
        manifest = embed_to_folder_ray(
            args.input, args.output, args.model, field=args.field, max_line_bytes=args.max_line_bytes,
            resume=args.resume, format=args.format, truncate=args.truncate, normalize=args.normalize, dim=args.dim,
            precision=args.precision, say=_say, ray_options=ray_options, **sizes, **options,
        )
    print(f"bertzoo: wrote {manifest['rows_done']:,} x {manifest['output']['dimension']} {args.precision} embeddings "
          f"in {len(manifest['shards'])} shards to {args.output} ({MANIFEST})", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        if not is_folder_output(args.output):
            raise InputError("--engine ray writes a shard folder: give it with --output DIR/")
        return _embed_to_folder_ray(args)
    if is_folder_output(args.output):
        return _embed_to_folder(args)
    if args.resume:
        raise InputError("--resume continues a sharded run: give the folder with --output DIR/")
    check_output(args.output, ARRAY_SUFFIXES, inputs=(args.input,))
    if args.precision == "int8" and args.output is not None and args.output.endswith(".npy"):
        raise InputError("--precision int8 stores a scale per vector, which one .npy file cannot hold; "
                         "write to a folder (--output DIR/) or to .jsonl")
    texts = read_input_texts(args)
    import torch

    from bertzoo.inference.pipeline import get_pipeline
    from bertzoo.inference.vectors import check_output_options, shape_vectors

    options = run_options(args)
    batch_tokens, progress, threads = options.pop("batch_tokens"), options.pop("progress"), options.pop("threads")
    pipe = get_pipeline("embed", args.model, **options)
    check_output_options(pipe.dimension, args.dim, args.precision)
    normalize = pipe.embedding_normalize if args.normalize is None else args.normalize
    with warnings_to_stderr():
        if texts:
            fitted = pipe.encode_for_embedding(texts, args.truncate)
            raw = pipe.embed_encoded(fitted, batch_tokens=batch_tokens, normalize=False, progress=progress,
                                     threads=threads)
            tokens, cut = fitted.tokens.tolist(), fitted.truncated.tolist()
        else:
            raw, tokens, cut = torch.empty((0, pipe.dimension)), [], []
    shaped = shape_vectors(raw, normalize=normalize, dim=args.dim, precision=args.precision)
    vectors = shaped.values
    if args.output is not None and args.output.endswith(".npy"):
        import numpy as np

        write_output(args.output, lambda f: np.save(f, vectors))
        print(f"bertzoo: wrote {vectors.shape[0]} x {vectors.shape[1]} embeddings to {args.output}", file=sys.stderr)
        return 0
    scales = shaped.scales.tolist() if shaped.scales is not None else [None] * len(texts)

    def record(i: int) -> dict[str, Any]:
        out = {"text": texts[i], "embedding": vectors[i].tolist(), "tokens": tokens[i], "truncated": cut[i]}
        if scales[i] is not None:
            out["scale"] = scales[i]
        return out

    emit((record(i) for i in range(len(texts))), args.output)
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("embed", help="sentence embeddings (JSON lines on stdout, or .npy/.jsonl)",
                              description="Embed texts with a sentence-embedding model (default all-MiniLM-L6-v2).")
    add_input_options(p, arrays=True)
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
    p.add_argument("--dim", type=int, default=None, metavar="N",
                   help="keep the first N dimensions (Matryoshka-style), re-normalised")
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
    shards.add_argument("--format", default="npy", metavar="FORMAT",
                        choices=module_choices("bertzoo.corpus.shards", "SHARD_FORMATS"),
                        help="%(choices)s; shard files: npy (vectors + row records) or parquet (needs pyarrow)")
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
