"""``bertzoo rerank QUERY DOC...``: documents ordered by a cross-encoder's relevance to the query.

One JSON line per document, best first: ``{"index", "score", "document"}``. The score is the
sigmoid of the logit for one-label cross-encoders (sentence-transformers' CrossEncoder and TEI's
convention); ``--raw`` gives the logit itself.
"""

from __future__ import annotations

import argparse
from typing import Any

from bertzoo.cli._common import add_input_options, add_model_options, text_job


def run(args: argparse.Namespace) -> int:
    from bertzoo.inference.pipeline import rerank

    def rank(documents: list[Any], options: dict[str, Any]) -> Any:
        return rerank(args.query, documents, args.model, top_k=args.top_k, raw=args.raw, **options)

    return text_job(args, rank, lambda documents, ranked: (
        {"index": r["index"], "score": r["score"], "document": documents[r["index"]]} for r in ranked),
        what="documents")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "rerank", help="order documents by relevance to a query (cross-encoder)",
        description="Score each DOC against QUERY with a cross-encoder (a sequence-classification checkpoint) "
                    "and print them best first, one JSON line each.",
    )
    p.add_argument("query", metavar="QUERY", help="the query every document is scored against")
    add_input_options(p, metavar="DOC", what="documents to rank")
    add_model_options(p)
    p.add_argument("--top-k", type=int, default=None, metavar="K", help="only the K best documents (default all)")
    p.add_argument("--raw", action="store_true", help="logits instead of sigmoid scores")
    p.set_defaults(func=run)
