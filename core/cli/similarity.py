"""``bertzoo similarity A B``: the cosine similarity of two texts' embeddings."""

from __future__ import annotations

import argparse
from typing import Any

from bertzoo.cli._common import add_model_options, run_options
from bertzoo.cli.embed import add_prompt_options


def run(args: argparse.Namespace) -> int:
    from bertzoo.inference.pipeline import similarity

    score = similarity(args.a, args.b, args.model, progress=False, prompt=args.prompt, prompt_name=args.prompt_name,
                       truncate_dim=args.truncate_dim, **run_options(args, batches=False))
    print(f"{score:.6f}")
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("similarity", help="cosine similarity of two texts' embeddings",
                              description="Print the cosine similarity of A and B (default model all-MiniLM-L6-v2).")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    add_model_options(p, batches=False)
    add_prompt_options(p)
    p.add_argument("--truncate-dim", type=int, default=None, metavar="N",
                   help="compare the first N dimensions (sentence-transformers' truncate_dim)")
    p.set_defaults(func=run)
