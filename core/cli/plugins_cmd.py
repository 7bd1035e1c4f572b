"""``bertzoo plugins``: installed plugins with distribution, version, status and one-line errors.

``--check`` also imports every registered component's target and options model (what building
would import), so a plugin author sees a broken ``"module:attr"`` string before a user does.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bertzoo.cli._common import print_table

CHECK_FAILED = 1


def _summary(info: Any) -> str:
    """The COMPONENTS / ERROR cell: the load error, or what the plugin provides and any hook that failed."""
    if info.error:
        return str(info.error)
    text = f"{len(info.components)} component(s)"
    if info.commands:
        text += f", {len(info.commands)} command(s)"
    for hook, error in info.hook_errors.items():
        text += f"; {hook} failed: {error}"
    return text


def check_record(record: Any) -> str | None:
    """Why ``record``'s target or options model cannot be imported (or is the wrong kind of object), or None."""
    from pydantic import BaseModel

    try:
        target = record.load()
        if record.kind == "family":
            from bertzoo.family import Family

            if not isinstance(target, Family):
                return f"target {record.target!r} is a {type(target).__name__}, not a bertzoo.family.Family"
        elif record.kind != "preset" and not callable(target):
            return f"target {record.target!r} is a {type(target).__name__}, not a class or factory"
        options = record.options_model()
    except Exception as exc:  # whatever the plugin's module raises is the finding
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    if options is not None and not (isinstance(options, type) and issubclass(options, BaseModel)):
        return f"options {record.options!r} is not a pydantic model class"
    return None


def _check(host: Any, as_json: bool) -> int:
    """Import every registered target and options model; list what failed (plugins included); exit 1 if any."""
    records = host.registry.records()
    found = [{"kind": r.kind, "name": r.full_name, "plugin": r.plugin, "error": check_record(r)} for r in records]
    failures = [f for f in found if f["error"] is not None]
    for info in host.plugins.values():
        if info.status == "failed":
            failures.append({"kind": "plugin", "name": info.name, "plugin": info.name, "error": info.error})
        failures += [{"kind": "plugin", "name": info.name, "plugin": info.name, "error": f"{hook}: {error}"}
                     for hook, error in info.hook_errors.items()]
    if as_json:
        print(json.dumps({"checked": len(found), "failures": failures}, indent=2))
    else:
        if failures:
            print_table([[f["kind"], f["name"], f["error"]] for f in failures], ["KIND", "NAME", "ERROR"])
        print(f"checked {len(found)} component(s) from {sum(p.status == 'loaded' for p in host.plugins.values())} "
              f"plugin(s): {len(failures)} failure(s)", file=sys.stderr)
    return CHECK_FAILED if failures else 0


def run(args: argparse.Namespace) -> int:
    from bertzoo.discovery import get_host

    host = get_host()
    if args.check:
        return _check(host, args.json)
    infos = [p for p in host.plugins.values()
             if args.all or not p.builtin or p.status != "loaded" or p.hook_errors]
    if args.json:
        print(json.dumps([p.as_dict() for p in infos], indent=2))
        return 0
    if not infos:
        print("no third-party plugins installed (`bertzoo plugins --all` lists the built-ins)")
        return 0
    rows = [[p.name, p.distribution or "-", p.version or "-", p.status, _summary(p)] for p in infos]
    print_table(rows, ["PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "COMPONENTS / ERROR"])
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("plugins", help="list plugins: distribution, version, status, error")
    p.add_argument("--all", action="store_true", help="include bertzoo's built-in plugins")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--check", action="store_true",
                   help="import every registered component's target and options model; exit 1 if any fails "
                        "(or any plugin failed to load)")
    p.set_defaults(func=run)
