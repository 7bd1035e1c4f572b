"""The ``bertzoo`` command line.

User errors print one line on stderr and exit 2; ``--debug`` shows the traceback. Commands
that only read the registry (``list``, ``plugins``) never import torch. Further commands live
in :mod:`bertzoo.commands` modules, each adding its own sub-parser.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import yaml

from bertzoo.errors import BertzooError, SpecError

_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

# Modules that add sub-commands: each defines ``add_parser(subparsers)``. Import must stay light.
COMMAND_MODULES: tuple[str, ...] = ("bertzoo.commands.spec", "bertzoo.commands.verify", "bertzoo.commands.main_job")


def _print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# -- list ----------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from bertzoo.discovery import get_registry
    from bertzoo.registry import KINDS

    reg = get_registry()
    kind, pattern = args.kind, args.pattern
    # `bertzoo list '*sdpa*'`: a pattern given without a kind
    if kind is not None and kind not in KINDS and any(ch in kind for ch in "*?[:") and pattern == "*":
        kind, pattern = None, kind
    names = reg.list_components(kind, pattern)
    records = [r for r in reg.records(kind) if r.full_name in set(names)]
    if args.json:
        print(json.dumps([reg.describe(r.kind, r.full_name) for r in records], indent=2))
        return 0
    if not records:
        print(f"no {kind or 'component'} matches {pattern!r}", file=sys.stderr)
        return 0
    _print_table([[r.kind, r.full_name, r.description] for r in records], ["KIND", "NAME", "DESCRIPTION"])
    if reg.failed_plugins:
        print(f"\n{len(reg.failed_plugins)} plugin(s) failed to load; see `bertzoo plugins`", file=sys.stderr)
    return 0


# -- plugins -------------------------------------------------------------------------------------
def cmd_plugins(args: argparse.Namespace) -> int:
    from bertzoo.discovery import get_host

    host = get_host()
    infos = [p for p in host.plugins.values() if args.all or not p.builtin or p.status != "loaded"]
    if args.json:
        print(json.dumps([p.as_dict() for p in infos], indent=2))
        return 0
    if not infos:
        print("no third-party plugins installed (`bertzoo plugins --all` lists the built-ins)")
        return 0
    rows = [
        [p.name, p.distribution or "-", p.version or "-", p.status,
         p.error if p.error else f"{len(p.components)} component(s)"]
        for p in infos
    ]
    _print_table(rows, ["PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "COMPONENTS / ERROR"])
    return 0


# -- build ---------------------------------------------------------------------------------------
def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` pairs; values are read as YAML scalars (``2`` → int, ``true`` → bool)."""
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


def cmd_build(args: argparse.Namespace) -> int:
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
        from bertzoo.checkpoint import save_pretrained

        save_pretrained(model, args.output)
        print(f"saved to {args.output}", file=sys.stderr)
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertzoo", description="A plugin-based model zoo for the BERT family.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("list", help="list registered components (wildcards allowed)")
    p.add_argument("kind", nargs="?", help="embedding, attention, layer, pooler, head or preset")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. '*sdpa*'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("plugins", help="list plugins: distribution, version, status, error")
    p.add_argument("--all", action="store_true", help="include bertzoo's built-in plugins")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("build", help="assemble a model from a preset or spec file")
    p.add_argument("spec", help="preset name or spec file (.yaml, .json, .toml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec field, a component (attention=sdpa) or an option (repeatable)")
    p.add_argument("--print-spec", action="store_true", help="print the resolved spec")
    p.add_argument("--format", choices=("yaml", "json"), default="yaml", help="format of --print-spec")
    p.add_argument("--explain", action="store_true", help="say which attention was chosen and why")
    p.add_argument("--output", help="save the (randomly initialised) model to this folder")
    p.set_defaults(func=cmd_build)

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("BERTZOO_DEBUG", "") not in ("", "0")
    try:
        return int(args.func(args) or 0)
    except BertzooError as exc:
        if debug:
            traceback.print_exc()
        print(f"bertzoo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bertzoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bertzoo list | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
