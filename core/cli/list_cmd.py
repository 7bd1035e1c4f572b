"""``bertzoo list [KIND] [PATTERN]``: registered components, read from the registry without importing torch."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bertzoo.cli._common import print_table


def run(args: argparse.Namespace) -> int:
    from bertzoo.discovery import get_registry
    from bertzoo.family import preset_family
    from bertzoo.registry import KINDS

    reg = get_registry()
    kind, pattern = args.kind, args.pattern
    # `bertzoo list '*sdpa*'`: a pattern given without a kind
    if kind is not None and kind not in KINDS and any(ch in kind for ch in "*?[:") and pattern == "*":
        kind, pattern = None, kind
    names = set(reg.list_components(kind, pattern))
    records = [r for r in reg.records(kind) if r.full_name in names]
    if args.json:
        print(json.dumps([reg.describe(r.kind, r.full_name) for r in records], indent=2))
        return 0
    if not records:
        print(f"no {kind or 'component'} matches {pattern!r}", file=sys.stderr)
        return 0
    if kind == "preset":  # the standard sizes per family, with the config.json each copies
        print_table([[r.kind, r.full_name, preset_family(r), r.description, str(r.metadata.get("source") or "")]
                     for r in records], ["KIND", "NAME", "FAMILY", "DESCRIPTION", "SOURCE"])
    else:
        print_table([[r.kind, r.full_name, r.description] for r in records], ["KIND", "NAME", "DESCRIPTION"])
    if reg.failed_plugins:
        print(f"\n{len(reg.failed_plugins)} plugin(s) failed to load; see `bertzoo plugins`", file=sys.stderr)
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("list", help="list registered components (wildcards allowed)")
    p.add_argument("kind", nargs="?", help="a component kind: embedding, attention, layer, pooler, head, preset, ...")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. '*sdpa*'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
