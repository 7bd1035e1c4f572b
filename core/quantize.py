"""Deprecated location, kept for one release; import from bertzoo.plugins.precisions.

The int8 and bfloat16 Linear layers are now the ``bertzoo:int8`` and ``bertzoo:bfloat16`` compute
precisions (registry kind ``precision``).
"""

from bertzoo.plugins.precisions import (
    CALIBRATION_TEXTS,
    BFloat16Linear,
    Int8Linear,
    cast_linear_bf16,
    input_absmax,
    quantize_int8,
)

__all__ = ["CALIBRATION_TEXTS", "BFloat16Linear", "Int8Linear", "cast_linear_bf16", "input_absmax", "quantize_int8"]
