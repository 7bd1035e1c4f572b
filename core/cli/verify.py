"""``bertzoo verify MODEL``: parity of a checkpoint in bertzoo against transformers (and sentence-transformers).

Prints the report of :func:`bertzoo.verify.verify` (or ``--json``). Exit status: 0 when every
comparison is within tolerance, 1 on a parity failure, 2 on a user error (missing folder,
transformers not installed, ...; printed as one line by :func:`bertzoo.cli.main`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bertzoo.cli._common import module_choices

PARITY_FAILURE = 1


def run(args: argparse.Namespace) -> int:
    from bertzoo.verify import verify

    def progress(line: str) -> None:
        if not getattr(args, "quiet", False):
            print(f"bertzoo verify: {line}", file=sys.stderr, flush=True)

    report = verify(
        args.model, attentions=args.attention or None, device=args.device, dtype=args.dtype,
        batch_size=args.batch_size, revision=args.revision, progress=progress,
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.format())
    return 0 if report.passed else PARITY_FAILURE


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "verify", help="check a checkpoint's outputs in bertzoo against transformers / sentence-transformers",
        description="Load MODEL in bertzoo (once per attention implementation) and in transformers (eager, "
                    "float32; and sentence-transformers for a modules.json folder), run both on built-in varied "
                    "texts and report max |diff| and cosine per output. Exit 0 = pass, 1 = parity failure, "
                    "2 = user error.",
    )
    p.add_argument("model", help="checkpoint folder (HF or sentence-transformers) or hub id")
    p.add_argument("--attention", action="append", metavar="NAME",
                   help="attention implementation to compare (repeatable; default: bertzoo's built-ins "
                        "that can serve the model; 'all' = every registered one)")
    p.add_argument("--device", default=None, help="device for both sides (default cpu)")
    p.add_argument("--dtype", default="float32", metavar="DTYPE",
                   choices=module_choices("bertzoo.verify.tolerances", "TOLERANCES"),
                   help="%(choices)s: bertzoo's dtype (the reference runs in float32; tolerances follow the dtype)")
    p.add_argument("--batch-size", type=int, default=4, help="size of the length-sorted batches (default 4)")
    p.add_argument("--revision", default=None, help="branch, tag or commit for hub ids")
    p.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    p.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                   help="no progress lines on stderr (errors only)")
    p.set_defaults(func=run)
