"""The plugin contract: one hook, ``bertzoo_register(registry)``.

A plugin is a module (or object) with a function marked ``@bertzoo.hookimpl``, found through
an entry point in group ``bertzoo``. It may declare ``bertzoo_plugin_api = ">=1,<2"`` (a
version specifier) and ``bertzoo_namespace = "foo"`` (the prefix of its full names).
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "bertzoo"
ENTRY_POINT_GROUP = "bertzoo"
# Bump the minor version when the hook or the registrar gains something; the major when
# something a plugin relies on changes.
PLUGIN_API_VERSION = "1.0"

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
