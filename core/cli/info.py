"""``bertzoo info [MODEL]``: what a model folder holds, read from its files without loading weights."""

from __future__ import annotations

import argparse
import json
from typing import Any


def run(args: argparse.Namespace) -> int:
    from bertzoo.inference.pipeline import model_info

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


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("info", help="what a model folder holds: spec, max length and its source, head",
                              description="Describe MODEL (default all-MiniLM-L6-v2) without loading its weights.")
    p.add_argument("model_arg", nargs="?", default=None, metavar="MODEL", help="model folder or hub id")
    p.add_argument("--model", "-m", default=None, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
