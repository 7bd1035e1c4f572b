"""``bertzoo classify``: labels and scores of texts or text pairs from a sequence-classification model."""

from __future__ import annotations

import argparse
from typing import Any

from bertzoo.cli._common import add_input_options, add_model_options, text_job


def _record(text: Any, result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"text": text[0], "text_pair": text[1]} if isinstance(text, tuple) else {"text": text}
    out.update(result if isinstance(result, dict) else {"labels": result})
    return out


def run(args: argparse.Namespace) -> int:
    from bertzoo.inference.pipeline import classify

    top_k = None if args.all_labels else args.top_k
    return text_job(args, lambda texts, options: classify(texts, args.model, top_k=top_k, **options),
                    lambda texts, results: (_record(t, r) for t, r in zip(texts, results, strict=True)),
                    pairs=True)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("classify", help="labels and scores from a sequence-classification model",
                              description="Classify texts (or text pairs) with a sequence-classification checkpoint.")
    add_input_options(p)
    add_model_options(p)
    p.add_argument("--pair", default=None, help="second text paired with every TEXT argument")
    p.add_argument("--pair-field", default=None, help="JSON-lines field with the second text of a pair")
    p.add_argument("--top-k", type=int, default=1, help="labels per text (default 1)")
    p.add_argument("--all-labels", action="store_true", help="every label with its score")
    p.set_defaults(func=run)
