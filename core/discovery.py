"""Plugin discovery: entry points in group ``bertzoo``, each plugin isolated.

We do not call pluggy's ``load_setuptools_entrypoints``: it aborts on the first plugin that
fails to import (llm #1280). Instead every entry point is loaded, version-checked, registered
and called on its own, and a failure at any step unregisters that plugin and records the error.
Discovery runs on first use, never at import time.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import threading
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from bertzoo import hookspecs
from bertzoo.errors import PluginError
from bertzoo.registry import PluginRegistrar, Registry


@dataclass
class PluginInfo:
    """What ``bertzoo plugins`` shows for one plugin."""

    name: str
    namespace: str
    distribution: str | None
    version: str | None
    module: str
    status: str  # "loaded", "failed", "disabled"
    error: str | None = None  # one line: exception type and the first line of its message
    components: list[str] = field(default_factory=list)
    builtin: bool = False
    traceback: str | None = None  # the full traceback of a failure, for `bertzoo plugins --json`
    commands: list[str] = field(default_factory=list)  # CLI sub-commands its command hook added
    # hook name -> one-line error, for a hook other than bertzoo_register that failed (the plugin's
    # components stay registered)
    hook_errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "status": self.status,
            "error": self.error,
            "components": self.components,
            "builtin": self.builtin,
            "traceback": self.traceback,
            "commands": self.commands,
            "hook_errors": self.hook_errors,
        }


def _split_env(value: str | None) -> set[str] | None:
    """``"a, B_c"`` -> ``{"a", "b-c"}`` (normalised); unset -> None; set but empty -> the empty set."""
    if value is None:
        return None
    return {_normalize(part.strip()) for part in value.split(",") if part.strip()}


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, so listings and error messages stay one line.

    pluggy's validation errors put the cause on their last line (the first names the plugin and
    hook), so all of their lines are kept, joined.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, pluggy.PluginValidationError):
        text = "; ".join(lines)
    else:
        text = lines[0] + (" ..." if len(lines) > 1 else "") if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


BUILTIN_NAMESPACE = "bertzoo"


def _check_namespace(info: PluginInfo) -> None:
    """Only bertzoo's own distribution registers under ``bertzoo:``, even with a built-in disabled."""
    if info.namespace == BUILTIN_NAMESPACE and not info.builtin:
        source = f"distribution {info.distribution!r}" if info.distribution else f"module {info.module!r}"
        raise PluginError(
            f"plugin {info.name!r} ({source}) claims the namespace 'bertzoo', which only bertzoo's own "
            "distribution may use (also when a built-in is disabled with BERTZOO_DISABLE_PLUGINS); set "
            "bertzoo_namespace = '<your name>' in the plugin module and register your components there"
        )


def _normalize(dist_name: str) -> str:
    """PEP 503 normalisation: ``Bertzoo_Foo`` -> ``bertzoo-foo``."""
    return re.sub(r"[-_.]+", "-", dist_name).lower()


def _default_namespace(ep_name: str, dist_name: str | None) -> str:
    """``bertzoo`` for our own distribution, ``foo`` for ``bertzoo-foo``, else the entry-point name."""
    if dist_name:
        norm = _normalize(dist_name)
        if norm == "bertzoo":
            return "bertzoo"
        if norm.startswith("bertzoo-"):
            return norm[len("bertzoo-") :]
    return ep_name.lower()


class PluginHost:
    """Loads plugins into a registry. Tests make their own; the process uses :func:`get_host`."""

    def __init__(self, registry: Registry | None = None, group: str = hookspecs.ENTRY_POINT_GROUP) -> None:
        self.registry = registry if registry is not None else Registry()
        self.group = group
        self.plugins: dict[str, PluginInfo] = {}
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)

    # -- loading ---------------------------------------------------------------------------
    def load_entry_points(self, environ: Mapping[str, str] | None = None) -> None:
        """Load every entry point of the group, each on its own (see the module docstring).

        Environment (``environ`` defaults to ``os.environ``):

        - ``BERTZOO_PLUGINS``: comma list of third-party plugins to load, each named by its
          entry-point name, distribution name or namespace; set but empty loads none. Built-in
          plugins (distribution ``bertzoo``) always load unless disabled, so a model can still
          be built (llm's ``LLM_LOAD_PLUGINS`` works the same way).
        - ``BERTZOO_DISABLE_PLUGINS``: comma list of plugins to skip, built-ins included.
        - ``BERTZOO_STRICT_PLUGINS=1``: raise :class:`PluginError` on the first failing plugin.
        """
        env = os.environ if environ is None else environ
        allow = _split_env(env.get("BERTZOO_PLUGINS"))
        deny = _split_env(env.get("BERTZOO_DISABLE_PLUGINS")) or set()
        strict = env.get("BERTZOO_STRICT_PLUGINS", "").strip().lower() not in ("", "0", "false", "no", "off")

        def dist_name(ep: md.EntryPoint) -> str:
            return ep.dist.name if ep.dist is not None else ""

        # Built-ins first, so a third-party plugin that collides with a built-in name is the one refused.
        eps = sorted(
            md.entry_points(group=self.group),
            key=lambda e: (_normalize(dist_name(e)) != "bertzoo", _normalize(dist_name(e)), e.name),
        )
        known: set[str] = set()
        for ep in eps:
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            builtin = _normalize(dist or "") == "bertzoo"
            namespace = _default_namespace(ep.name, dist)
            ids = {_normalize(ep.name), _normalize(namespace)}
            if dist:
                ids.add(_normalize(dist))
            # Two distributions may use the same entry-point name; keep both, qualified.
            name = ep.name if ep.name not in self.plugins else f"{_normalize(dist or '?')}:{ep.name}"
            info = PluginInfo(
                name=name, namespace=namespace, distribution=dist, version=version,
                module=ep.value, status="loaded", builtin=builtin,
            )
            known |= ids
            if (allow is not None and not builtin and not (ids & allow)) or (ids & deny):
                info.status = "disabled"
                self.plugins[name] = info
                if ids & deny:
                    self.registry.record_disabled(name, namespace)
                continue
            self._load_one(info, loader=ep.load, strict=strict)
        if deny - known:  # a typo would silently disable nothing
            warnings.warn(f"BERTZOO_DISABLE_PLUGINS names {', '.join(sorted(deny - known))}, which no installed "
                          f"plugin is called; installed: {', '.join(sorted(self.plugins))}", UserWarning, stacklevel=2)

    def register_plugin(self, name: str, plugin: Any, *, namespace: str | None = None, strict: bool = False) -> PluginInfo:
        """Register an already-imported plugin object (tests, notebooks).

        Raises:
            PluginError: ``name`` is already taken by another plugin of this host.
        """
        if name in self.plugins:
            raise PluginError(f"a plugin named {name!r} is already loaded; register this one under another name")
        info = PluginInfo(
            name=name, namespace=namespace or name, distribution=None, version=None,
            module=getattr(plugin, "__name__", type(plugin).__name__), status="loaded",
        )
        return self._load_one(info, loader=lambda: plugin, strict=strict)

    def _load_one(self, info: PluginInfo, loader: Any, strict: bool) -> PluginInfo:
        """Import, check, register and run one plugin; on any failure roll it back and record why."""
        self.plugins[info.name] = info
        registrar: PluginRegistrar | None = None
        in_pm = False
        try:
            obj = loader()
            namespace = getattr(obj, "bertzoo_namespace", None) or info.namespace
            if not isinstance(namespace, str):
                raise PluginError(
                    f"plugin {info.name!r} declares bertzoo_namespace = {namespace!r}; it must be a string such as 'foo'"
                )
            info.namespace = namespace
            _check_namespace(info)
            self._check_api(info, obj)
            self.pm.register(obj, name=info.name)
            in_pm = True
            registrar = PluginRegistrar(
                self.registry, info.name, info.namespace, distribution=info.distribution, version=info.version
            )
            impls = [i for i in self.pm.hook.bertzoo_register.get_hookimpls() if i.plugin_name == info.name]
            if not impls and not self._impls("bertzoo_register_commands", info.name):
                raise PluginError(
                    f"plugin {info.name!r} ({info.module}) has no function marked @bertzoo.hookimpl "
                    "named bertzoo_register (or bertzoo_register_commands); add one"
                )
            hook_args = {"registry": registrar}
            for impl in impls:
                # pluggy lets an impl take fewer arguments than the spec ("opt-in arguments")
                impl.function(**{arg: hook_args[arg] for arg in impl.argnames})
            info.components = [f"{r.kind}:{r.full_name}" for r in registrar.registered]
        except (Exception, SystemExit) as exc:  # a plugin calling sys.exit() must not end the host
            rolled_back = list(registrar.registered) if registrar is not None else []
            for record in rolled_back:
                self.registry.remove(record)
            if in_pm:
                self.pm.unregister(name=info.name)
            info.status = "failed"
            info.error = _one_line(exc)
            info.traceback = traceback.format_exc()
            info.components = []
            # A squatter refused the bertzoo namespace fills none of it: a miss there is not its fault.
            squatter = info.namespace == BUILTIN_NAMESPACE and not info.builtin
            self.registry.record_failure(
                info.name, info.error, [(r.kind, r.full_name) for r in rolled_back],
                namespace=None if squatter else info.namespace,
            )
            if strict:
                raise PluginError(
                    f"plugin {info.name!r} failed to load ({info.error}); fix or uninstall it, or unset "
                    "BERTZOO_STRICT_PLUGINS to skip it"
                ) from exc
        return info

    def _impls(self, hook: str, plugin: str) -> list[Any]:
        return [i for i in getattr(self.pm.hook, hook).get_hookimpls() if i.plugin_name == plugin]

    def hook_functions(self, hook: str) -> list[tuple[PluginInfo, Callable[..., Any]]]:
        """Each loaded plugin's implementation of ``hook``, in load order, as ``(info, call)``.

        ``call(**arguments)`` passes the implementation only the arguments it declares (pluggy's
        opt-in arguments). The caller isolates failures and reports them with
        :meth:`record_hook_failure`.
        """
        found: list[tuple[PluginInfo, Callable[..., Any]]] = []
        for info in self.plugins.values():
            if info.status != "loaded":
                continue
            for impl in self._impls(hook, info.name):
                def call(_impl: Any = impl, **arguments: Any) -> Any:
                    return _impl.function(**{arg: arguments[arg] for arg in _impl.argnames})

                found.append((info, call))
        return found

    @staticmethod
    def record_hook_failure(info: PluginInfo, hook: str, exc: BaseException) -> None:
        """Record that ``info``'s implementation of ``hook`` raised ``exc`` (shown by ``bertzoo plugins``)."""
        info.hook_errors[hook] = _one_line(exc)
        info.traceback = "".join(traceback.format_exception(exc))

    @staticmethod
    def _check_api(info: PluginInfo, obj: Any) -> None:
        wanted = getattr(obj, "bertzoo_plugin_api", None)
        if wanted is None:
            return
        try:
            spec = SpecifierSet(str(wanted))
        except InvalidSpecifier as exc:
            raise PluginError(
                f"plugin {info.name!r} declares bertzoo_plugin_api = {wanted!r}, which is not a "
                "version specifier; write e.g. '>=1,<2'"
            ) from exc
        if Version(hookspecs.PLUGIN_API_VERSION) not in spec:
            raise PluginError(
                f"plugin {info.name!r} needs bertzoo plugin API {wanted}, but this bertzoo provides "
                f"{hookspecs.PLUGIN_API_VERSION}; install a plugin release made for plugin API "
                f"{hookspecs.PLUGIN_API_VERSION.split('.')[0]}.x or a matching bertzoo"
            )


_lock = threading.Lock()
_host: PluginHost | None = None
_loading_thread: int | None = None  # the thread loading plugins, while it does


def get_host() -> PluginHost:
    """The process-wide plugin host, loading entry points on first use."""
    global _host, _loading_thread
    if _host is None and _loading_thread == threading.get_ident():
        # a plugin's hook asked for the registry while plugins load: it would wait on itself forever
        raise PluginError(
            "a plugin called bertzoo.discovery.get_registry() (or get_host()) from inside its hook while "
            "plugins were loading; use the registry the hook receives instead"
        )
    with _lock:
        if _host is None:
            _loading_thread = threading.get_ident()
            try:
                host = PluginHost()
                host.load_entry_points()
            finally:
                _loading_thread = None
            _host = host
        return _host


def get_registry() -> Registry:
    """The process-wide registry, filled from installed plugins on first use."""
    return get_host().registry


def registry_or_default(registry: Registry | None) -> Registry:
    """``registry`` if given, else the process-wide one: how every ``registry=None`` argument resolves."""
    return registry if registry is not None else get_registry()


def reset() -> None:
    """Forget the loaded plugins; the next use re-discovers (tests, after installing a plugin)."""
    global _host
    with _lock:
        _host = None
