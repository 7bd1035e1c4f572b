"""Conformance of options models and presets.

A component's options model (the ``options=`` of its registration) is checked through the path
users take, :func:`bertzoo.spec.validate_components`:

- ``options-defaults``: the defaults validate (plus any ``conformance={"options": ...}`` the
  registration gives for required options) and survive a JSON round trip;
- ``options-wrong-type``: a value of the wrong type for each typed option fails with a
  :class:`~bertzoo.errors.SpecError` naming ``components.<kind>.options.<option>``;
- ``options-unknown``: a misspelt option fails, naming its path too.

A preset must resolve to a valid spec (``preset-validates``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from pydantic import BaseModel, ValidationError

from bertzoo.errors import SpecError
from bertzoo.registry import ComponentRecord, Registry
from bertzoo.spec import ModelSpec, validate_components
from bertzoo.testing._base import Case, CaseFailed, conformance_metadata, expect, expect_raises, hinted


class _WrongType:
    """A value no typed option accepts (only ``Any`` takes it)."""

    def __repr__(self) -> str:
        return "<a _WrongType object>"


def _spec_with(kind: str, name: str, options: Mapping[str, Any]) -> ModelSpec:
    components: dict[str, Any] = {kind: {"name": name, "options": dict(options)}}
    if kind != "attention":
        components["attention"] = "eager"
    return ModelSpec.model_validate({"components": components})


def _model(record: ComponentRecord) -> type[BaseModel]:
    try:
        model = record.options_model()
    except Exception as exc:
        raise CaseFailed(f"importing its options model {record.options!r} failed: {type(exc).__name__}: {exc}") from None
    expect(isinstance(model, type) and issubclass(model, BaseModel),
           f"options={record.options!r} is not a pydantic model class")
    return model  # type: ignore[no-any-return]


def _defaults(record: ComponentRecord, registry: Registry, given: Mapping[str, Any]) -> None:
    model = _model(record)
    required = [n for n, f in model.model_fields.items() if f.is_required() and n not in given]
    if required:
        raise CaseFailed(f"options {required} are required and the registration gives no example value; add "
                         f"conformance={{'options': {{{required[0]!r}: ...}}}} to its registry.register call")
    try:
        spec = validate_components(_spec_with(record.kind, record.full_name, given), registry)
    except SpecError as exc:
        raise CaseFailed(f"the default options do not validate: {exc}") from None
    validated = getattr(spec.components, record.kind).options
    try:
        again = model.model_validate(validated).model_dump(mode="json")
    except ValidationError as exc:
        raise CaseFailed(f"the validated options, stored as JSON data, do not validate again: {exc}") from None
    expect(again == validated, f"options change on a JSON round trip: {validated} -> {again}")


def _wrong_type(record: ComponentRecord, registry: Registry, given: Mapping[str, Any]) -> None:
    model = _model(record)
    checked = 0
    for field in model.model_fields:
        try:
            model.model_validate({**given, field: _WrongType()})
        except ValidationError:
            pass
        else:
            continue  # typed Any: takes anything, nothing to check
        checked += 1
        path = f"components.{record.kind}.options.{field}"
        expect_raises(SpecError, lambda f=field: validate_components(  # type: ignore[misc]
            _spec_with(record.kind, record.full_name, {**given, f: _WrongType()}), registry),
            doing=f"validating a spec with a wrong-typed {field!r}", mentions=(path,))
    expect(checked > 0 or not model.model_fields,
           f"no option of {model.__name__} rejects a value of the wrong type; annotate the options with types")


def _unknown(record: ComponentRecord, registry: Registry, given: Mapping[str, Any]) -> None:
    path = f"components.{record.kind}.options.no_such_option"
    expect_raises(SpecError, lambda: validate_components(
        _spec_with(record.kind, record.full_name, {**given, "no_such_option": 1}), registry),
        doing="validating a spec with a misspelt option", mentions=(path,))


def _preset(record: ComponentRecord, registry: Registry) -> None:
    from bertzoo.factory import resolve_spec

    try:
        spec = resolve_spec(record.full_name, registry=registry)
    except SpecError as exc:
        raise CaseFailed(f"the preset does not resolve to a valid spec: {exc}") from None
    expect(spec.num_hidden_layers >= 0 and spec.hidden_size > 0, "the preset's spec has no size")


HINTS: dict[str, str] = {
    "preset-validates": "register a dict of ModelSpec fields (or a ModelSpec, or a function returning one)",
    "options-defaults": "give every option a default that validates, or an example value in "
                        "conformance={'options': {...}} at registration",
    "options-wrong-type": "annotate every option with a type (int, float, Literal[...]) so pydantic rejects "
                          "wrong values",
    "options-unknown": "let the options model reject unknown keys (model_config = ConfigDict(extra='forbid'))",
}


def options_cases(record: ComponentRecord, registry: Registry, options: Mapping[str, Any] | None = None) -> list[Case]:
    """The options-model cases of a component (none when it registers no options model)."""
    if record.kind == "preset":
        return hinted([Case("preset", record.full_name, "preset-validates", partial(_preset, record, registry))], HINTS)
    if record.options is None:
        return []
    given = {**conformance_metadata(record.metadata).get("options", {}), **(options or {})}
    named: list[tuple[str, Callable[[], None]]] = [
        ("options-defaults", partial(_defaults, record, registry, given)),
        ("options-wrong-type", partial(_wrong_type, record, registry, given)),
        ("options-unknown", partial(_unknown, record, registry, given)),
    ]
    return hinted([Case(record.kind, record.full_name, name, body) for name, body in named], HINTS)
