"""The plugin contract: ``bertzoo_register(registry)``, and ``bertzoo_register_commands(subparsers)``.

A plugin is a module (or object) with a function marked ``@bertzoo.hookimpl`` (either hook, or
both), found through an entry point in group ``bertzoo``. It may declare ``bertzoo_plugin_api = ">=1,<2"`` (a
version specifier) and ``bertzoo_namespace = "foo"`` (the prefix of its full names).
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "bertzoo"
ENTRY_POINT_GROUP = "bertzoo"
# Bump the minor version when the hook or the registrar gains something; the major when
# something a plugin relies on changes.
PLUGIN_API_VERSION = "1.1"  # 1.1: bertzoo_register_commands

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def bertzoo_register(registry: Any) -> None:
    """Register this plugin's components.

    Call ``registry.register(kind, name, target, description=..., capabilities=...,
    options=..., **metadata)`` once per component. ``kind`` is one of ``embedding``,
    ``attention``, ``layer``, ``pooler``, ``head``, ``preset``; ``target`` is a class or
    factory, or a ``"module:attr"`` string imported only when the component is built.
    """


@hookspec
def bertzoo_register_commands(subparsers: Any) -> None:
    """Add ``bertzoo`` sub-commands (as llm's ``register_commands``).

    ``subparsers`` is the CLI's ``argparse`` sub-parsers action: call
    ``subparsers.add_parser("name", help=...)``, add its arguments, and
    ``set_defaults(func=handler)`` where ``handler(args: argparse.Namespace) -> int`` returns the
    exit status. Raise a :class:`bertzoo.BertzooError` for a user error (one line, exit 2). A name
    already taken is refused; a hook that fails leaves no command behind, is shown by
    ``bertzoo plugins``, and the rest of the CLI works.
    """
