"""Names a module hands out on first use (PEP 562), and the deprecated module names kept for one release.

Used by ``bertzoo/__init__`` and ``bertzoo.checkpoint`` (cheap imports: torch loads only when a name
that needs it is first used) and by the old module names (``bertzoo.runner``, ``bertzoo.streaming``,
...), which forward every public name to the modules that now define them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_names(module: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``module``: ``names`` maps each name to the module defining it."""
    namespace = sys.modules[module].__dict__

    def __getattr__(name: str) -> Any:
        source = names.get(name)
        if source is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        loaded = importlib.import_module(source)
        # a name may stand for a submodule itself (``bertzoo.util``), not a name inside one
        value = loaded if source == f"{module}.{name}" else getattr(loaded, name)
        namespace[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__


def forwarded(module: str, sources: Iterable[str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a deprecated module: each public name of ``sources`` (their
    ``__all__``, else every name without a leading underscore), looked up in order, is the same object
    as in the module that now defines it."""
    names: dict[str, str] = {}
    for source in sources:
        loaded = importlib.import_module(source)
        public = getattr(loaded, "__all__", None) or [n for n in vars(loaded) if not n.startswith("_")]
        for name in public:
            names.setdefault(name, source)
    sys.modules[module].__dict__["__all__"] = sorted(names)
    return lazy_names(module, names)


__all__ = ["forwarded", "lazy_names"]
