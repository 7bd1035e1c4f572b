"""Registers the built-in compute precisions (kind ``precision``): ``bertzoo:float32``,
``bertzoo:bfloat16`` and ``bertzoo:int8``. Light on purpose: no torch here; targets are strings,
imported only when a precision is applied.

Metadata: ``devices`` (device types it runs on; empty = any), ``aliases`` (other names accepted
by ``compute=`` / ``dtype=`` / ``--compute``; the dtype aliases come from :mod:`bertzoo.dtypes`).
"""

from __future__ import annotations

from typing import Any

from bertzoo.dtypes import DTYPE_NAMES
from bertzoo.hookspecs import hookimpl

PRECISIONS = "bertzoo.plugins.precisions"


def _dtype_aliases(name: str) -> tuple[str, ...]:
    return tuple(alias for alias, canonical in DTYPE_NAMES.items() if canonical == name and alias != name)


@hookimpl
def bertzoo_register(registry: Any) -> None:
    registry.register(
        "precision", "float32", f"{PRECISIONS}:Float32Precision",
        description="the model as loaded: every matmul in float32 (default)",
        devices=(),  # changes nothing, so it runs wherever the model does
        aliases=_dtype_aliases("float32"),
    )
    registry.register(
        "precision", "bfloat16", f"{PRECISIONS}:BFloat16Precision",
        description="encoder matmuls in bfloat16, residual stream / LayerNorm / attention / head in float32",
        devices=("cpu", "cuda", "mps"),
        aliases=_dtype_aliases("bfloat16"),
    )
    registry.register(
        "precision", "int8", f"{PRECISIONS}:Int8Precision",
        description="encoder matmuls in int8 (per-token activations, per-channel weights, SmoothQuant); CPU",
        devices=("cpu",),
        aliases=(),
    )
