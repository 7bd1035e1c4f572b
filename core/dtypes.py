"""Dtype names: the one table that turns what users type (``"bf16"``, ``torch.float16``) into torch dtypes.

Torch-light at import: the table holds names; :func:`torch_dtype` imports torch when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bertzoo.errors import InputError

if TYPE_CHECKING:
    import torch

# alias -> canonical name (also torch's attribute name)
DTYPE_NAMES: dict[str, str] = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "float64": "float64", "fp64": "float64", "double": "float64",
}


def dtype_name(dtype: Any, *, default: str = "float32") -> str:
    """The canonical name of ``dtype`` (a ``torch.dtype``, a name or alias, or None for ``default``).

    Raises:
        InputError: a name that is not a floating dtype bertzoo knows.
    """
    if dtype is None:
        return default
    text = str(dtype).replace("torch.", "").strip().lower()
    try:
        return DTYPE_NAMES[text]
    except KeyError:
        raise InputError(
            f"dtype {dtype!r} is unknown; use one of {', '.join(sorted(set(DTYPE_NAMES.values())))} "
            f"(aliases: {', '.join(k for k in DTYPE_NAMES if k not in DTYPE_NAMES.values())})"
        ) from None


def torch_dtype(dtype: Any) -> torch.dtype:
    """``dtype`` (name, alias or ``torch.dtype``) as a ``torch.dtype``."""
    import torch

    return getattr(torch, dtype_name(dtype))  # type: ignore[no-any-return]


__all__ = ["DTYPE_NAMES", "dtype_name", "torch_dtype"]
