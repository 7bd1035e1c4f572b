"""Registers ``bertzoo:flash`` (variable-length attention over packed tokens).
Light on purpose: the target is a string, imported only when built."""

from __future__ import annotations

from typing import Any

from bertzoo.hookspecs import hookimpl
from bertzoo.interfaces import AttentionCapabilities

# only what differs from AttentionCapabilities' defaults (no weights, no head_mask, causal within
# each sequence); padded self-attention is gathered, attended packed and scattered back
FLASH_CAPABILITIES = AttentionCapabilities(
    cross_attention=False,  # packed cross-attention would need separate key offsets: not implemented
    kv_cache=False,
    varlen=True,
    position_bias=True,
    window=True,
)


@hookimpl
def bertzoo_register(registry: Any) -> None:
    registry.register(
        "attention", "flash", "bertzoo.plugins.flash:FlashAttention",
        description="variable-length attention over packed tokens (cu_seqlens); per-sequence SDPA on CPU, "
                    "flash-attn/torch varlen kernels on CUDA; padded input with any 2-D mask (left, right, "
                    "holes) gathered and scattered back",
        capabilities=FLASH_CAPABILITIES.as_dict(),
        # Below sdpa for padded requests (its padded path gathers and scatters per layer); a model
        # that runs packed asks for varlen, which only flash serves.
        priority=5,
    )
