"""``bertzoo answer QUESTION CONTEXT``: the best answer span in the context, from a question-answering model.

One JSON line: ``{"question", "answer", "score", "start", "end"}``, ``start``/``end`` being
character offsets into the context (as transformers' question-answering pipeline gives them).
"""

from __future__ import annotations

import argparse
from typing import Any

from bertzoo.cli._common import add_model_options, check_output, emit, refuse_default_model, run_options


def run(args: argparse.Namespace) -> int:
    from bertzoo.inference.pipeline import answer

    refuse_default_model(args, "answer")
    check_output(args.output)
    result = answer(args.question, args.context, args.model, **run_options(args, batches=False))
    emit([{"question": args.question, **result}], args.output)
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "answer", help="extract the answer to a question from a context (question answering)",
        description="Find the span of CONTEXT that best answers QUESTION with a question-answering checkpoint.",
    )
    p.add_argument("question", metavar="QUESTION")
    p.add_argument("context", metavar="CONTEXT")
    p.add_argument("--output", "-o", default=None, metavar="FILE",
                   help="write to FILE (.jsonl or .parquet) instead of a JSON line on stdout ('-' = stdout); "
                        "written atomically")
    add_model_options(p, batches=False)
    p.set_defaults(func=run)
