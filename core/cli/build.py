"""``bertzoo build SPEC``: assemble a (randomly initialised) model from a preset or spec file."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import Any

from bertzoo.errors import SpecError

_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` pairs; values are read as YAML scalars (``2`` → int, ``true`` → bool)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"--set {item!r} is not key=value; write e.g. --set num_hidden_layers=2")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        if isinstance(parsed, str) and _EXPONENT.fullmatch(parsed.strip()):
            parsed = float(parsed)  # YAML 1.1 reads `1e-7` (no dot) as text
        out[key.strip()] = parsed
    return out


def run(args: argparse.Namespace) -> int:
    from bertzoo.factory import assemble, resolve_spec
    from bertzoo.selection import resolve_attention

    overrides = parse_set(args.set)
    spec = resolve_spec(args.spec, overrides)
    if args.explain:
        from bertzoo.discovery import get_registry

        print(resolve_attention(spec, get_registry())[1].explain())
    if args.print_spec:
        print(spec.to_yaml() if args.format == "yaml" else spec.to_json(), end="" if args.format == "yaml" else "\n")
    model = assemble(spec)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"built {spec.name or args.spec}: {type(model).__name__}, {n_params:,} parameters", file=sys.stderr)
    if args.output:
        from bertzoo.checkpoint.save import save_pretrained

        save_pretrained(model, args.output)
        print(f"saved to {args.output}", file=sys.stderr)
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("build", help="assemble a model from a preset or spec file")
    p.add_argument("spec", help="preset name or spec file (.yaml, .json, .toml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec field, a component (attention=sdpa) or an option (repeatable)")
    p.add_argument("--print-spec", action="store_true", help="print the resolved spec")
    p.add_argument("--format", choices=("yaml", "json"), default="yaml", help="format of --print-spec")
    p.add_argument("--explain", action="store_true", help="say which attention was chosen and why")
    p.add_argument("--output", help="save the (randomly initialised) model to this folder")
    p.set_defaults(func=run)
