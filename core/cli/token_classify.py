"""``bertzoo token-classify TEXT...``: entities (or per-token labels) from a token-classification model.

One JSON line per text, ``{"text", "entities"}``, each entity as transformers' token-classification
pipeline gives it: ``entity_group`` (``entity`` with ``--aggregation none``), ``score``, ``word``,
``start``, ``end``.
"""

from __future__ import annotations

import argparse
from typing import Any

from bertzoo.cli._common import add_input_options, add_model_options, module_choices, text_job


def run(args: argparse.Namespace) -> int:
    from bertzoo.inference.pipeline import token_classify

    def tag(texts: list[Any], options: dict[str, Any]) -> Any:
        return token_classify(texts, args.model, aggregation=args.aggregation, **options)

    return text_job(args, tag, lambda texts, results: ({"text": t, "entities": r}
                                                       for t, r in zip(texts, results, strict=True)))


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "token-classify", help="named entities / token labels from a token-classification model",
        description="Label the tokens of each TEXT with a token-classification checkpoint; word pieces are "
                    "merged into entities (--aggregation simple) as transformers' pipeline does.",
    )
    add_input_options(p)
    add_model_options(p)
    p.add_argument("--aggregation", default="simple", metavar="NAME",
                   choices=module_choices("bertzoo.inference.token_classify", "AGGREGATIONS"),
                   help="%(choices)s; simple: merge word pieces into entity groups (default); none: one row per token")
    p.set_defaults(func=run)
