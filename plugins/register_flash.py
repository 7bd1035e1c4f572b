"""Registers ``bertzoo:flash`` (variable-length attention over packed tokens).
Light on purpose: the target is a string, imported only when built."""

from __future__ import annotations

from typing import Any

from bertzoo.hookspecs import hookimpl
from bertzoo.interfaces import AttentionCapabilities

FLASH_CAPABILITIES = AttentionCapabilities(
    devices=("cpu", "cuda"),
    dtypes=("float32", "bfloat16", "float16"),
    causal=True,  # within each sequence, no cache offset
    cross_attention=False,  # packed cross-attention would need separate key offsets: not implemented
    kv_cache=False,
    returns_weights=False,
    head_mask=False,
    dropout=True,
    varlen=True,
    padded=True,  # padded self-attention is gathered, attended packed and scattered back
)


@hookimpl
def bertzoo_register(registry: Any) -> None:
    registry.register(
        "attention", "flash", "bertzoo.plugins.flash:FlashAttention",
        description="variable-length attention over packed tokens (cu_seqlens); per-sequence SDPA on CPU, "
                    "flash-attn/torch varlen kernels on CUDA",
        capabilities=FLASH_CAPABILITIES.as_dict(),
        # Below sdpa for padded requests (its padded path gathers and scatters per layer); a model
        # that runs packed asks for varlen, which only flash serves.
        priority=5,
    )
