"""The component registry: records keyed by full name ``plugin:name``.

Modelled on timm's ``_registry.py`` (records with provenance, wildcard listing with natural
sort) with two deliberate differences: a duplicate full name is an error naming both sources,
and a lookup miss lists the candidates and close matches. Targets may be ``"module:attr"``
strings, imported only when the component is built, so listing never imports torch.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import fnmatch
import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from bertzoo.errors import ComponentNotFoundError, PluginError

KINDS: tuple[str, ...] = ("embedding", "attention", "layer", "pooler", "head", "preset", "precision", "family")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
# Keys bertzoo itself sets on a record (and `describe` shows): metadata may not shadow them.
RESERVED_METADATA: frozenset[str] = frozenset(
    {"kind", "name", "namespace", "plugin", "target", "description", "capabilities", "options",
     "distribution", "version", "full_name"}
)
_READ_ONLY_HINT = (
    "records are read-only once registered; a plugin adds its own components under its own namespace "
    "(it cannot change or replace another plugin's)"
)


def _natural_key(text: str) -> list[Any]:
    """Sort ``l2`` before ``l12`` (timm's ``_natural_key``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text.lower())]


def load_target(target: Any) -> Any:
    """Resolve a ``"module:attr"`` string (lazily registered target) to the object it names."""
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise PluginError(
            f"target {target!r} is not of the form 'module:attr'; register a class, a factory "
            "or a 'package.module:attr' string"
        )
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class FrozenDict(dict[str, Any]):
    """A dict that refuses every change: a record's capabilities and metadata.

    A dict subclass (not a mapping proxy) so it still compares equal to a dict and serialises
    as JSON; copies (``copy``/``deepcopy``/pickle) are frozen too.
    """

    __slots__ = ("_label",)

    def __init__(self, data: Mapping[str, Any] = {}, label: str = "a component record") -> None:  # noqa: B006 - never mutated
        super().__init__(data)
        self._label = label

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise PluginError(f"{self._label} cannot be changed: {_READ_ONLY_HINT}")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self), self._label))


@dataclass(frozen=True)
class _RecordFields:
    kind: str
    name: str
    namespace: str
    plugin: str
    target: Any
    description: str = ""
    capabilities: Mapping[str, Any] = field(default_factory=dict)
    options: Any = None  # a pydantic model class, or a "module:attr" string naming one
    metadata: Mapping[str, Any] = field(default_factory=dict)
    distribution: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        # A shallow copy: the registrant changing its own dict later must not change the record.
        label = f"{self.kind} '{self.namespace}:{self.name}'"
        object.__setattr__(self, "capabilities", FrozenDict(self.capabilities, f"the capabilities of {label}"))
        object.__setattr__(self, "metadata", FrozenDict(self.metadata, f"the metadata of {label}"))


class ComponentRecord(_RecordFields):
    """Everything known about one registered component, readable without building it.

    Immutable: ``record.target = ...`` raises :class:`PluginError` (a plugin must not swap the
    implementation behind another plugin's name), and so does changing its capabilities or metadata.
    """

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise PluginError(f"{self.kind} {self.full_name!r}: its {name!r} cannot be set: {_READ_ONLY_HINT}")

    def __delattr__(self, name: str) -> NoReturn:
        raise PluginError(f"{self.kind} {self.full_name!r}: its {name!r} cannot be deleted: {_READ_ONLY_HINT}")

    @property
    def full_name(self) -> str:
        return f"{self.namespace}:{self.name}"

    def load(self) -> Any:
        """Import (if needed) and return the registered class or factory."""
        try:
            return load_target(self.target)
        except Exception as exc:  # an import error inside a plugin module
            raise PluginError(
                f"{self.kind} {self.full_name!r} from plugin {self.plugin!r}: importing its target "
                f"{self.target!r} failed ({type(exc).__name__}: {exc}); fix or reinstall the plugin"
            ) from exc

    def options_model(self) -> Any:
        """The pydantic model that validates this component's options, or None."""
        if self.options is None:
            return None
        return load_target(self.options)

    def build(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)


class Registry:
    """Records of every registered component, with name resolution and wildcard listing.

    A registry starts empty; :func:`bertzoo.discovery.get_registry` fills the process-wide one
    from the installed plugins on first use. Tests build their own.
    """

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], ComponentRecord] = {}
        # plugin name -> error message, for plugins that failed to load (keys are plugin names only)
        self.failed_plugins: dict[str, str] = {}
        # (kind, full name) -> plugin that would have provided it but failed, when known
        self._failed_provides: dict[tuple[str, str], str] = {}
        # namespace -> plugin that would have filled it but failed
        self._failed_namespaces: dict[str, str] = {}
        # plugin name -> its namespace, for plugins BERTZOO_DISABLE_PLUGINS turned off
        self.disabled_plugins: dict[str, str] = {}

    # -- registration -------------------------------------------------------------------
    def add(self, record: ComponentRecord) -> ComponentRecord:
        if record.kind not in KINDS:
            raise PluginError(
                f"plugin {record.plugin!r} registered {record.name!r} under unknown kind {record.kind!r}; "
                f"use one of {', '.join(KINDS)}"
            )
        if not _NAME_RE.match(record.name):
            raise PluginError(
                f"plugin {record.plugin!r} registered the {record.kind} name {record.name!r}; names are "
                "lower-case letters, digits, '-', '_' and '.', starting with a letter or digit"
            )
        if not _NAME_RE.match(record.namespace):
            raise PluginError(
                f"plugin {record.plugin!r} uses the namespace {record.namespace!r}; namespaces are "
                "lower-case letters, digits, '-', '_' and '.', starting with a letter or digit"
            )
        shadowed = sorted(RESERVED_METADATA & set(record.metadata))
        if shadowed:
            raise PluginError(
                f"plugin {record.plugin!r} passed {', '.join(map(repr, shadowed))} as metadata of {record.kind} "
                f"{record.full_name!r}; bertzoo sets those itself (the plugin and namespace come from the "
                "plugin's distribution and bertzoo_namespace); remove or rename them"
            )
        key = (record.kind, record.full_name)
        if key in self._records:
            other = self._records[key]
            raise PluginError(
                f"{record.kind} {record.full_name!r} is registered twice: by plugin {other.plugin!r} "
                f"({other.target!r}) and by plugin {record.plugin!r} ({record.target!r}); "
                "rename one of them or disable one plugin (BERTZOO_DISABLE_PLUGINS)"
            )
        self._records[key] = record
        return record

    def register(
        self,
        kind: str,
        name: str,
        target: Any,
        *,
        plugin: str = "local",
        namespace: str | None = None,
        description: str = "",
        capabilities: Mapping[str, Any] | None = None,
        options: Any = None,
        **metadata: Any,
    ) -> ComponentRecord:
        """Register ``target`` as component ``namespace:name`` of ``kind``.

        Args:
            kind: one of :data:`KINDS`.
            name: short name, e.g. ``"sdpa"``.
            target: a class or factory, or a ``"module:attr"`` string imported only when built.
            plugin: the plugin this comes from (stamped by the plugin facade).
            namespace: the prefix of the full name; defaults to ``plugin``.
            description: one line shown by ``bertzoo list``.
            capabilities: declared capabilities (for attention: devices, dtypes, causal, ...).
            options: a pydantic model class (or ``"module:attr"``) validating the component's options.
            **metadata: anything else (e.g. ``uses_pooler`` for heads, ``priority`` for attention).

        Raises:
            PluginError: unknown kind, malformed name, or the full name is already registered.
        """
        return self.add(
            ComponentRecord(
                kind=kind,
                name=name,
                namespace=namespace or plugin,
                plugin=plugin,
                target=target,
                description=description,
                capabilities=dict(capabilities or {}),
                options=options,
                metadata=dict(metadata),
            )
        )

    def unregister_plugin(self, plugin: str) -> None:
        """Drop every record of ``plugin`` (used when its hook fails half-way)."""
        for key in [k for k, r in self._records.items() if r.plugin == plugin]:
            del self._records[key]

    def remove(self, record: ComponentRecord) -> None:
        """Drop ``record`` if it is the one registered under its key (rollback of a failed plugin)."""
        key = (record.kind, record.full_name)
        if self._records.get(key) is record:
            del self._records[key]

    def record_failure(
        self,
        plugin: str,
        error: str,
        provides: Iterable[tuple[str, str]] = (),
        *,
        namespace: str | None = None,
    ) -> None:
        """Remember that ``plugin`` failed, so lookups of what it would have given say so.

        Args:
            plugin: the plugin's name (its entry-point name).
            error: one line: the exception type and message.
            provides: ``(kind, full name)`` pairs it registered before failing, when known.
            namespace: the namespace its full names would have had.
        """
        self.failed_plugins[plugin] = error
        for kind, name in provides:
            self._failed_provides[(kind, name)] = plugin
        if namespace is not None:
            self._failed_namespaces[namespace] = plugin

    def record_disabled(self, plugin: str, namespace: str) -> None:
        """Remember that ``plugin`` (filling ``namespace``) was disabled, so a miss there names the variable."""
        self.disabled_plugins[plugin] = namespace

    # -- queries --------------------------------------------------------------------------
    def records(self, kind: str | None = None) -> list[ComponentRecord]:
        found = [r for r in self._records.values() if kind is None or r.kind == kind]
        return sorted(found, key=lambda r: (KINDS.index(r.kind), _natural_key(r.full_name)))

    def list_components(
        self,
        kind: str | None = None,
        pattern: str | Iterable[str] = "*",
        exclude: str | Iterable[str] = (),
    ) -> list[str]:
        """Full names of registered components matching shell-style ``pattern`` (like timm's ``list_models``).

        A pattern without ``:`` matches the short name, or the full name, so ``"*sdp*"`` finds
        ``bertzoo:sdpa``.
        """
        if kind is not None and kind not in KINDS:
            raise ComponentNotFoundError(_unknown_kind_message(kind))
        includes = [pattern] if isinstance(pattern, str) else list(pattern)
        excludes = [exclude] if isinstance(exclude, str) else list(exclude)

        def matches(record: ComponentRecord, patterns: list[str]) -> bool:
            return any(
                fnmatch.fnmatchcase(record.full_name, p) or fnmatch.fnmatchcase(record.name, p)
                for p in patterns
            )

        return [
            r.full_name
            for r in self.records(kind)
            if matches(r, includes) and not (excludes and matches(r, excludes))
        ]

    def is_component(self, kind: str, name: str) -> bool:
        try:
            self.get(kind, name)
        except ComponentNotFoundError:
            return False
        return True

    def get(self, kind: str, name: str) -> ComponentRecord:
        """Resolve a full or unique short name to its record.

        Raises:
            ComponentNotFoundError: unknown kind or name (with close matches), ambiguous short
                name (with the candidates), or a name whose plugin failed to load (with its error).
        """
        if kind not in KINDS:
            raise ComponentNotFoundError(_unknown_kind_message(kind))
        if ":" in name:
            record = self._records.get((kind, name))
            if record is not None:
                return record
        else:
            candidates = [r for r in self.records(kind) if r.name == name]
            if len(candidates) == 1:
                return candidates[0]
            if len(candidates) > 1:
                names = ", ".join(r.full_name for r in candidates)
                raise ComponentNotFoundError(
                    f"{kind} name {name!r} is ambiguous: it is provided by {names}; "
                    "use the full name plugin:name"
                )
        raise ComponentNotFoundError(self._miss_message(kind, name))

    def _miss_message(self, kind: str, name: str) -> str:
        if ":" in name:
            failed = self._failed_provides.get((kind, name))
        else:
            failed = next(
                (p for (k, full), p in self._failed_provides.items() if k == kind and full.split(":", 1)[1] == name),
                None,
            )
        if failed is None and ":" in name:
            # `foo:thing` where the plugin giving namespace foo failed and nothing else fills it
            namespace = name.split(":", 1)[0]
            if namespace in self._failed_namespaces and not any(
                r.namespace == namespace for r in self._records.values()
            ):
                failed = self._failed_namespaces[namespace]
        if failed is not None:
            return (
                f"{kind} {name!r} is not available because plugin {failed!r} failed to load: "
                f"{self.failed_plugins.get(failed, 'unknown error')}; fix that plugin, "
                "then check `bertzoo plugins`"
            )
        known = [r.full_name for r in self.records(kind)]
        pool = known + [r.name for r in self.records(kind)]
        close = difflib.get_close_matches(name, pool, n=3, cutoff=0.5)
        msg = f"unknown {kind} {name!r}"
        if close:
            msg += f"; did you mean {', '.join(repr(c) for c in dict.fromkeys(close))}?"
        if known:
            msg += f" Registered {kind}s: {', '.join(known)}."
        else:
            msg += f" No {kind} is registered."
        if self.failed_plugins:
            msg += (
                f" Plugins that failed to load (one may provide it): {', '.join(sorted(self.failed_plugins))}; "
                "see `bertzoo plugins`."
            )
        disabled = sorted(p for p, ns in self.disabled_plugins.items() if ":" not in name or name.startswith(f"{ns}:"))
        if disabled:
            msg += (
                f" Disabled by BERTZOO_DISABLE_PLUGINS (one may provide it): {', '.join(disabled)}; remove it "
                "from that variable to use it."
            )
        return msg

    def describe(self, kind: str, name: str) -> dict[str, Any]:
        """Metadata of one component as plain data (for the CLI and docs)."""
        r = self.get(kind, name)
        return {
            "kind": r.kind,
            "name": r.full_name,
            "plugin": r.plugin,
            "description": r.description,
            "capabilities": dict(r.capabilities),
            "target": _target_name(r.target),
            **r.metadata,
        }

    def create(self, kind: str, name: str, *args: Any, **kwargs: Any) -> Any:
        """Build the component ``name`` of ``kind``: ``target(*args, **kwargs)``."""
        return self.get(kind, name).build(*args, **kwargs)


def _target_name(target: Any) -> str:
    """``"module:attr"`` for a class or function; ``"<dict>"`` etc. for data (presets)."""
    if isinstance(target, str):
        return target
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}:{qualname}"
    return f"<{type(target).__name__}>"


def _unknown_kind_message(kind: str) -> str:
    close = difflib.get_close_matches(kind, KINDS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown component kind {kind!r}{hint}; kinds are {', '.join(KINDS)}"


class PluginRegistrar:
    """The facade a plugin's ``bertzoo_register`` hook receives (llm's ``register`` callback idea).

    It stamps the plugin name and namespace on every record, so plugins never touch the
    registry's internals, and remembers what the plugin registered so a failure half-way can be
    rolled back. It is read-only to the plugin (its name and namespace come from the host), and
    :meth:`get` hands out copies, so a plugin cannot change what another registered.
    """

    __slots__ = ("_registry", "_plugin", "_namespace", "_distribution", "_version", "_registered")
    _registry: Registry
    _plugin: str
    _namespace: str
    _distribution: str | None
    _version: str | None
    _registered: list[ComponentRecord]

    def __init__(
        self,
        registry: Registry,
        plugin: str,
        namespace: str,
        *,
        distribution: str | None = None,
        version: str | None = None,
    ) -> None:
        for slot, value in (("_registry", registry), ("_plugin", plugin), ("_namespace", namespace),
                            ("_distribution", distribution), ("_version", version), ("_registered", [])):
            object.__setattr__(self, slot, value)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise PluginError(
            f"plugin {self._plugin!r} tried to set {name!r} on its registrar, which is read-only: the plugin "
            "name and namespace come from its distribution; choose the namespace with bertzoo_namespace = "
            "'<name>' in the plugin module"
        )

    @property
    def plugin(self) -> str:
        """The plugin's name (its entry-point name)."""
        return self._plugin

    @property
    def namespace(self) -> str:
        """The prefix of the plugin's full names."""
        return self._namespace

    @property
    def distribution(self) -> str | None:
        return self._distribution

    @property
    def version(self) -> str | None:
        return self._version

    @property
    def registered(self) -> list[ComponentRecord]:
        """What this plugin registered so far (a copy of the list; the records are immutable)."""
        return list(self._registered)

    def register(
        self,
        kind: str,
        name: str,
        target: Any,
        *,
        description: str = "",
        capabilities: Mapping[str, Any] | None = None,
        options: Any = None,
        **metadata: Any,
    ) -> ComponentRecord:
        """Register ``target`` as ``<namespace>:<name>``; see :meth:`Registry.register`."""
        record = ComponentRecord(
            kind=kind,
            name=name,
            namespace=self._namespace,
            plugin=self._plugin,
            target=target,
            description=description,
            capabilities=dict(capabilities or {}),
            options=options,
            metadata=dict(metadata),
            distribution=self._distribution,
            version=self._version,
        )
        self._registry.add(record)
        self._registered.append(record)
        return record

    # Read access for plugins that build on others (e.g. a preset derived from a preset).
    def get(self, kind: str, name: str) -> ComponentRecord:
        """A copy of the record ``name`` resolves to: changing it cannot reach the registry."""
        return read_only_view(self._registry.get(kind, name))


def read_only_view(record: ComponentRecord) -> ComponentRecord:
    """A copy of ``record`` whose nested containers (capability lists, data targets) are copies too."""
    target = _copied(record.target) if isinstance(record.target, (dict, list)) else record.target
    return dataclasses.replace(
        record, target=target, capabilities=_copied(record.capabilities), metadata=_copied(record.metadata)
    )


def _copied(value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - an uncopyable value (a lock, a module): the record stays frozen at the top
        return value


RegisterFn = Callable[..., ComponentRecord]
