"""Registers ``bertzoo:sdpa`` (attention through ``F.scaled_dot_product_attention``).
Light on purpose: the target is a string, imported only when built."""

from __future__ import annotations

from typing import Any

from bertzoo.hookspecs import hookimpl
from bertzoo.interfaces import AttentionCapabilities

# only what differs from AttentionCapabilities' defaults; like them, no weights and no head_mask
# (SDPA never forms the probabilities) and padded input only
SDPA_CAPABILITIES = AttentionCapabilities(
    dtypes=("float32", "bfloat16", "float16", "float64"), position_bias=True, window=True,
)


@hookimpl
def bertzoo_register(registry: Any) -> None:
    registry.register(
        "attention", "sdpa", "bertzoo.plugins.sdpa:SdpaAttention",
        description="torch scaled_dot_product_attention: fused kernels, boolean masks built once per forward",
        capabilities=SDPA_CAPABILITIES.as_dict(),
        priority=10,
    )
