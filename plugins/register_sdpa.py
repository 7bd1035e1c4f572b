"""Registers ``bertzoo:sdpa`` (attention through ``F.scaled_dot_product_attention``).
Light on purpose: the target is a string, imported only when built."""

from __future__ import annotations

from typing import Any

from bertzoo.hookspecs import hookimpl
from bertzoo.interfaces import AttentionCapabilities

SDPA_CAPABILITIES = AttentionCapabilities(
    devices=("cpu", "cuda"),
    dtypes=("float32", "bfloat16", "float16", "float64"),
    causal=True,
    cross_attention=True,
    kv_cache=True,
    returns_weights=False,  # SDPA never forms the probabilities
    head_mask=False,
    dropout=True,
    varlen=False,
    padded=True,
)


@hookimpl
def bertzoo_register(registry: Any) -> None:
    registry.register(
        "attention", "sdpa", "bertzoo.plugins.sdpa:SdpaAttention",
        description="torch scaled_dot_product_attention: fused kernels, boolean masks built once per forward",
        capabilities=SDPA_CAPABILITIES.as_dict(),
        priority=10,
    )
