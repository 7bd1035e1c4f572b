"""``bertzoo fill-mask``: the likeliest tokens for each ``[MASK]`` from a masked-lm model."""

from __future__ import annotations

import argparse
from typing import Any

from bertzoo.cli._common import add_input_options, add_model_options, text_job


def run(args: argparse.Namespace) -> int:
    from bertzoo.inference.pipeline import fill_mask

    return text_job(args, lambda texts, options: fill_mask(texts, args.model, top_k=args.top_k, **options),
                    lambda texts, results: ({"text": t, "predictions": r} for t, r in zip(texts, results, strict=True)))


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("fill-mask", help="predict [MASK] tokens with a masked-lm model",
                              description='Fill mask tokens, e.g. bertzoo fill-mask "The capital of France is [MASK]." '
                                          "--model bert-base-uncased")
    add_input_options(p)
    add_model_options(p)
    p.add_argument("--top-k", type=int, default=5, help="candidates per mask (default 5)")
    p.set_defaults(func=run)
