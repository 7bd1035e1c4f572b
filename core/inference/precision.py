"""Compute precisions, resolved through the registry (kind ``precision``).

``compute="int8"``, ``dtype="bfloat16"`` and ``quantize="int8"`` all name a registered precision;
a plugin adds one by registering ``registry.register("precision", "fp8", ...)``. The built-ins
(``bertzoo:float32``, ``bertzoo:bfloat16``, ``bertzoo:int8``) come from
:mod:`bertzoo.plugins.precisions` through the same entry-point mechanism.
"""

from __future__ import annotations

from typing import Any

from bertzoo.discovery import registry_or_default
from bertzoo.errors import ComponentNotFoundError, InputError
from bertzoo.registry import ComponentRecord, Registry

DEFAULT_PRECISION = "float32"


def precision_names(registry: Registry | None = None) -> list[str]:
    """Every name a user may type: short and full names plus declared aliases (for CLI choices)."""
    reg = registry_or_default(registry)
    names: list[str] = []
    for record in reg.records("precision"):
        names += [record.name, record.full_name, *record.metadata.get("aliases", ())]
    return list(dict.fromkeys(names))


def find_precision(name: str, registry: Registry | None = None) -> ComponentRecord:
    """The precision record named ``name`` (short name, full name or an alias).

    Raises:
        ComponentNotFoundError: listing the registered precisions.
    """
    reg = registry_or_default(registry)
    text = str(name).replace("torch.", "").lower()
    try:
        return reg.get("precision", text)
    except ComponentNotFoundError as exc:
        for record in reg.records("precision"):
            if text in record.metadata.get("aliases", ()):
                return record
        raise exc from None


def precision_name(compute: str | None = None, *, dtype: Any = None, quantize: str | None = None,
                   registry: Registry | None = None) -> str:
    """The full name of the precision asked for by ``compute``, or by the older ``dtype`` / ``quantize``.

    Raises:
        InputError: contradicting switches (``quantize="int8"`` with ``dtype="bfloat16"``, or
            ``compute`` with either).
        ComponentNotFoundError: an unknown precision.
    """
    legacy = [v for v in (quantize, None if dtype in (None, "float32", "fp32") else dtype) if v is not None]
    if compute is not None and legacy:
        raise InputError(f"compute={compute!r} and dtype/quantize were both given; use compute= alone")
    if quantize is not None and dtype not in (None, "float32", "fp32", "float"):
        raise InputError(f"quantize={quantize!r} runs the remaining layers in float32; drop dtype={dtype!r} "
                         "or quantize (or use compute= alone)")
    wanted = compute if compute is not None else (quantize or dtype or DEFAULT_PRECISION)
    switch = "compute" if compute is not None else "quantize" if quantize is not None else "dtype"
    try:
        return find_precision(str(wanted), registry).full_name
    except ComponentNotFoundError:
        raise InputError(f"{switch}={wanted!r} is unknown; use one of {', '.join(precision_names(registry))} "
                         "(the registered compute precisions)") from None


def apply_precision(model: Any, name: str, *, device: Any = None, calibrate: Any = None,
                    registry: Registry | None = None) -> Any:
    """Convert ``model`` in place to the precision ``name`` (checked against its declared devices)."""
    record = find_precision(name, registry)
    devices = tuple(record.metadata.get("devices", ()))
    device_type = str(device or "cpu").split(":", 1)[0]
    if devices and device_type not in devices:
        raise InputError(f"precision {record.full_name!r} runs on {', '.join(devices)}, not {device_type!r}; "
                         f"pick another compute precision ({', '.join(precision_names(registry))})")
    precision = record.build()
    return precision.apply(model, calibrate=calibrate)


__all__ = ["DEFAULT_PRECISION", "apply_precision", "find_precision", "precision_name", "precision_names"]
