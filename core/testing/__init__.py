"""The conformance kit: prove that a plugin's components behave like bertzoo's own.

From your tests::

    from bertzoo.testing import check_component, check_plugin

    def test_my_attention_conforms():
        check_component("attention", "foo:linear")   # raises ConformanceError listing failures

    def test_everything_my_plugin_registers():
        check_plugin("foo")

or from the command line, one pytest test per (component, case)::

    pytest --bertzoo-conformance=foo

What is checked, per kind (each module's docstring has the details):

- attention (:mod:`bertzoo.testing.attention`): against the eager definition in float64 with
  padding (none, right, left; fully padded rows give zeros), causal with and without a cache
  offset, cross-attention, packed variable-length input, weights, head mask and dropout, in
  fp32 and bf16 (:data:`TOLERANCES`); every declared capability is exercised and every
  undeclared one must be refused, by :func:`bertzoo.selection.choose` and by the call.
- embedding, layer, pooler (:mod:`bertzoo.testing.modules`): shapes, dtypes, determinism in
  eval, gradients, state-dict key stability.
- head (:mod:`bertzoo.testing.heads`): build, loss rule, output type, save/load round trip.
- options models and presets (:mod:`bertzoo.testing.options`).

An attention that biases its scores on purpose (ALiBi, relative position buckets, rotary) or sees
fewer keys on purpose (a sliding window) describes that to the reference with ``score_bias=`` /
``visible=`` (see :mod:`bertzoo.testing.attention`), or once at registration with
``conformance={"score_bias": ..., "visible": ...}``.

Every failure names the component, the case, the measured difference and how to fix it. A
component that cannot be set up (its target fails to import or build, its options do not
validate) gets one failing ``setup`` case and its other cases are skipped; the other components
of the plugin are checked as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bertzoo.discovery import registry_or_default
from bertzoo.errors import SpecError
from bertzoo.registry import ComponentRecord, Registry, load_target
from bertzoo.testing._base import (
    TOLERANCES,
    Case,
    CaseFailed,
    ConformanceError,
    ConformanceFailure,
    ConformanceReport,
    compare,
    conformance_metadata,
    run_cases,
)
from bertzoo.testing.attention import ScoreBias, Visible, attention_reference

__all__ = [
    "TOLERANCES", "Case", "CaseFailed", "ConformanceError", "ConformanceFailure", "ConformanceReport",
    "ScoreBias", "Visible", "attention_reference", "check_component", "check_plugin", "compare", "component_cases",
    "find_plugin", "plugin_cases",
]


def _validated_options(record: ComponentRecord, options: Mapping[str, Any], registry: Registry) -> dict[str, Any]:
    """``options`` validated by the component's options model, as the factory would hand them over."""
    from bertzoo.spec import ModelSpec, validate_components

    components: dict[str, Any] = {record.kind: {"name": record.full_name, "options": dict(options)}}
    if record.kind != "attention":
        components["attention"] = "eager"
    spec = validate_components(ModelSpec.model_validate({"components": components}), registry)
    return dict(getattr(spec.components, record.kind).options)


def component_cases(kind: str, name: str, *, options: Mapping[str, Any] | None = None,
                    registry: Registry | None = None, visible: Visible | None = None,
                    score_bias: ScoreBias | None = None) -> list[Case]:
    """Every conformance case of one registered component, without running them.

    Args:
        kind: ``attention``, ``embedding``, ``layer``, ``pooler``, ``head`` or ``preset``.
        name: the component's full or unique short name.
        options: options to build it with (default: its options model's defaults, plus the
            ``conformance={"options": ...}`` of its registration).
        registry: where to find it (default: the installed plugins).
        visible: attention only: ``visible(s_q, s_k, query_offset) -> (s_q, s_k) bool``, the
            keys this implementation sees on top of the mask (a sliding window, say); the eager
            reference applies it too. Default: the registration's ``conformance={"visible": ...}``.
        score_bias: attention only: ``score_bias(query, key, query_offset) -> Tensor``, the additive
            bias this implementation adds to the scores (ALiBi, relative positions, rotary); the
            reference adds it too. Default: the registration's ``conformance={"score_bias": ...}``.

    Raises:
        ComponentNotFoundError: no such component.
        SpecError: ``options`` do not validate.
    """
    from bertzoo.testing.attention import attention_cases
    from bertzoo.testing.heads import head_cases
    from bertzoo.testing.modules import module_cases
    from bertzoo.testing.options import options_cases

    reg = registry_or_default(registry)
    record = reg.get(kind, name)
    cases = options_cases(record, reg, dict(options or {}))
    if kind == "preset":
        return cases
    meta = conformance_metadata(record.metadata)
    given = {**meta.get("options", {}), **(options or {})}
    try:
        built_with = _validated_options(record, given, reg)
    except SpecError as exc:
        raise SpecError(f"cannot check {kind} {record.full_name} with options {given}: {exc}") from None
    if kind == "head":  # built through bertzoo.build(), which validates them again
        return cases + head_cases(record, dict(options or {}), reg)
    if kind == "attention":
        visible = visible or _hook(record, meta, "visible")
        score_bias = score_bias or _hook(record, meta, "score_bias")
        return cases + attention_cases(record, built_with, reg, visible=visible, score_bias=score_bias)
    return cases + module_cases(kind, record, built_with, reg)


def check_component(kind: str, name: str, *, options: Mapping[str, Any] | None = None,
                    registry: Registry | None = None, visible: Visible | None = None,
                    score_bias: ScoreBias | None = None, raise_on_failure: bool = True) -> ConformanceReport:
    """Run every conformance case of one component (see :func:`component_cases` for the arguments).

    Returns:
        The report: passed case ids, failed ones with their messages, skipped ones with why.

    Raises:
        ConformanceError: some case failed (unless ``raise_on_failure=False``); its message lists
            each failure as ``<kind> <component>, case <case>: <what was measured>``.
    """
    cases = component_cases(kind, name, options=options, registry=registry, visible=visible, score_bias=score_bias)
    return run_cases(cases, raise_on_failure=raise_on_failure, what=f"{kind} {cases[0].component if cases else name}")


def _hook(record: ComponentRecord, meta: Mapping[str, Any], key: str) -> Any:
    """The ``conformance={key: ...}`` reference hook of a registration (a callable or ``"module:attr"``)."""
    value = meta.get(key)
    if value is None:
        return None
    try:
        hook = load_target(value)
    except Exception as exc:
        raise SpecError(
            f"{record.kind} {record.full_name}: conformance[{key!r}] = {value!r} cannot be imported "
            f"({type(exc).__name__}: {exc}); register a callable or a 'package.module:attr' string"
        ) from None
    if not callable(hook):
        raise SpecError(f"{record.kind} {record.full_name}: conformance[{key!r}] = {value!r} is not callable")
    return hook


def _setup_failure(kind: str, name: str, exc: Exception) -> Case:
    """The one failing case of a component whose cases could not even be listed."""
    message = f"{type(exc).__name__}: {exc}"

    def failed() -> None:
        raise CaseFailed(f"could not set up its cases: {message}")

    return Case(kind, name, "setup", failed,
                hint="fix the registration (target, options model, conformance entry) so the component builds")


def find_plugin(plugin: str) -> Any:
    """The loaded plugin called ``plugin`` (entry-point name, namespace or distribution name).

    Raises:
        ConformanceError: no installed plugin has that name, or it failed to load (with its error).
    """
    from bertzoo.discovery import _normalize, get_host

    host = get_host()
    wanted = _normalize(plugin)
    for info in host.plugins.values():
        names = {_normalize(info.name), _normalize(info.namespace), _normalize(info.distribution or "")}
        if wanted in names:
            if info.status != "loaded":
                raise ConformanceError(
                    f"plugin {plugin!r} is {info.status}" + (f": {info.error}" if info.error else "")
                    + "; fix it (see `bertzoo plugins`) before checking its components"
                )
            return info
    known = ", ".join(sorted(p.name for p in host.plugins.values())) or "none"
    raise ConformanceError(
        f"no installed plugin is called {plugin!r} (plugins: {known}); install your package (pip install -e .) "
        "and check that its [project.entry-points.bertzoo] entry is there (`bertzoo plugins`)"
    )


def plugin_cases(plugin: str) -> list[Case]:
    """Every conformance case of every component ``plugin`` registers, in registration order.

    Raises:
        ConformanceError: the plugin is unknown, failed to load, or registers nothing.
    """
    info = find_plugin(plugin)
    if not info.components:
        raise ConformanceError(f"plugin {plugin!r} loaded but registered no component; call registry.register(...) "
                               "in its bertzoo_register hook")
    cases: list[Case] = []
    for entry in info.components:
        kind, _, full_name = entry.partition(":")
        try:
            cases += component_cases(kind, full_name)
        except Exception as exc:  # one broken component must not hide the others' results
            cases.append(_setup_failure(kind, full_name, exc))
    return cases


def check_plugin(plugin: str, *, raise_on_failure: bool = True) -> ConformanceReport:
    """Run the conformance cases of every component ``plugin`` registers (with default options).

    Raises:
        ConformanceError: the plugin is missing or broken, or some case failed.
    """
    return run_cases(plugin_cases(plugin), raise_on_failure=raise_on_failure, what=f"plugin {plugin!r}")
