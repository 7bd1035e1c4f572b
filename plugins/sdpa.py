"""Attention through ``torch.nn.functional.scaled_dot_product_attention`` (SDPA).

Same contract as the eager reference (:class:`bertzoo.plugins.eager.EagerAttention`) for the
padded layout: q ``(B, h, S, d)``, k/v ``(B, h, S_k, d)`` → context ``(B, h, S, d)``. The
:class:`~bertzoo.interfaces.AttentionMask` is turned into SDPA's form once per forward and
kept in ``mask.cache``, so every layer reuses it:

- nothing to hide → no mask at all (SDPA's fastest path);
- causal, no padding, no cache offset → ``is_causal=True``;
- otherwise one boolean mask from :mod:`bertzoo.model.masks`, ``(B, 1, 1, S_k)`` for padding only
  (broadcast, never materialised per query) or ``(B, 1, S, S_k)`` when causal or windowed
  (``mask.window``); a user's 4-D float mask or a position bias (``mask.bias``) is passed as an
  additive mask, added exactly as eager adds it.

Rows whose query sees no key give zeros (DESIGN.md). torch ≥ 2.5's CPU kernels already do so,
but the fused CUDA kernels are not documented to; such rows are found once per forward and
zeroed only when they exist, so the common case pays nothing.

Does not return weights and has no ``head_mask``: asking for either raises (``auto`` picks an
implementation that can, see :mod:`bertzoo.selection`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from bertzoo.errors import InputError
from bertzoo.interfaces import AttentionCapabilities, AttentionMask
from bertzoo.model.masks import additive_mask, boolean_mask, empty_rows
from bertzoo.plugins.attention_base import ProbabilityFreeAttention
from bertzoo.plugins.register_sdpa import SDPA_CAPABILITIES


@dataclass
class SdpaMask:
    """The per-forward SDPA form of an :class:`AttentionMask` (see :func:`sdpa_mask`)."""

    attn_mask: Tensor | None  # bool (True = attend) or additive float, broadcastable to (B, h, S, S_k)
    is_causal: bool
    dead_rows: Tensor | None  # (B | 1, 1, S | 1, 1) bool, True where a query sees no key; None if none


def sdpa_mask(mask: AttentionMask, query: Tensor, key: Tensor) -> SdpaMask:
    """SDPA's mask for ``query``/``key``, built once per forward and cached in ``mask.cache``.

    Uses the shared helpers of :mod:`bertzoo.model.masks` (the same semantics as eager); adds only the
    choice of SDPA's mask-free and ``is_causal`` paths and a one-time check for empty rows.
    """
    s_q, s_k = query.shape[-2], key.shape[-2]
    cache_key = ("bertzoo:sdpa", s_q, s_k, query.dtype, str(query.device))
    cached = mask.cache.get(cache_key)
    if cached is not None:
        return cached

    if mask.key_padding is not None and mask.explicit is None and bool(mask.key_padding.all()):
        mask = replace(mask, key_padding=None, cache={})  # nothing is padding
    if mask.explicit is None and mask.key_padding is None and mask.bias is None and mask.window is None and (
        not mask.causal or (mask.query_offset == 0 and s_q == s_k)
    ):
        result = SdpaMask(None, mask.causal, None)  # no mask, or SDPA's own causal path
    else:
        attn_mask: Tensor | None
        if mask.bias is not None or (mask.explicit is not None and mask.explicit.dtype != torch.bool):
            # a position bias or a user's float mask: added as eager adds it (bias, then 0 / finfo.min)
            attn_mask = additive_mask(mask, s_q, s_k, query.dtype, query.device)
        else:
            attn_mask = boolean_mask(mask, s_q, s_k, query.device)
        empty = empty_rows(mask, s_q, s_k, query.device)
        # one host check per forward, so layers pay for zeroing only when such rows exist
        result = SdpaMask(attn_mask, False, empty if empty is not None and bool(empty.any()) else None)
    mask.cache[cache_key] = result
    return result


class SdpaAttention(ProbabilityFreeAttention):
    """Attention through ``F.scaled_dot_product_attention``; no parameters, weights or head_mask.

    Built by the factory as ``SdpaAttention(spec)``.
    """

    capabilities: ClassVar[AttentionCapabilities] = SDPA_CAPABILITIES
    component: ClassVar[str] = "bertzoo:sdpa"

    def attend(self, query: Tensor, key: Tensor, value: Tensor, *, mask: AttentionMask, dropout_p: float,
               scale: float | None) -> Tensor:
        """q ``(B, h, S, d)``, k/v ``(B, h, S_k, d)`` → context ``(B, h, S, d)``.

        Raises:
            InputError: packed ``(T, h, d)`` input (use ``flash``).
        """
        if query.dim() != 4:
            raise InputError(
                f"attention 'bertzoo:sdpa' takes padded (B, h, S, d) input, got shape {tuple(query.shape)}; "
                "packed (T, h, d) input needs a variable-length attention such as 'flash'"
            )
        m = sdpa_mask(mask, query, key)
        context = F.scaled_dot_product_attention(
            query, key, value, attn_mask=m.attn_mask, dropout_p=dropout_p, is_causal=m.is_causal, scale=scale
        )
        if m.dead_rows is not None:
            context = context.masked_fill(m.dead_rows, 0.0)
        return context
