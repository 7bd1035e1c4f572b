"""Sliding-window (local) attention, as in Longformer's local part.

Query ``i`` (at absolute position ``p = i + query_offset`` when a KV cache holds earlier tokens)
sees key ``j`` only when ``|p - j| <= window``, on top of the usual padding and causal masks.
With ``window`` at least the sequence length it is exactly full attention.

The op follows bertzoo's attention contract (:class:`bertzoo.interfaces.Attention`): q
``(B, h, S, d)``, k/v ``(B, h, S_k, d)`` → context ``(B, h, S, d)``; rows that see no key give
zeros; anything it did not declare (weights, head mask, cross-attention, packed input) raises.
"""

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bertzoo.errors import IncompatibleComponentError, InputError
from bertzoo.interfaces import AttentionMask
from bertzoo.model.masks import additive_mask, boolean_mask
from bertzoo.plugins.attention_base import ProbabilityFreeAttention


def window_band(q_len: int, k_len: int, query_offset: int, window: int, device: Any = None) -> Tensor:
    """``(S, S_k)`` bool, True where query ``i`` may see key ``j``: ``|i + query_offset - j| <= window``."""
    q_pos = torch.arange(q_len, device=device)[:, None] + query_offset  # (S, 1)
    k_pos = torch.arange(k_len, device=device)[None, :]  # (1, S_k)
    return (q_pos - k_pos).abs() <= window


class SlidingWindowAttention(ProbabilityFreeAttention):
    """Local attention through ``F.scaled_dot_product_attention``; no parameters.

    ``ProbabilityFreeAttention`` (bertzoo's base for ops that never form the probabilities, as
    ``bertzoo:sdpa``) holds the forward contract and refuses weights and a head mask; this class
    writes only :meth:`attend`.

    Args:
        spec: the model spec (unused; the factory passes it to every component).
        window: how far a query sees, in positions, to each side.
    """

    component = "example:sliding-window"  # the name the base's error messages use

    def __init__(self, spec: Any = None, *, window: int = 128) -> None:
        super().__init__(spec)
        self.window = window

    def extra_repr(self) -> str:
        return f"window={self.window}"

    def attend(self, query: Tensor, key: Tensor, value: Tensor, *, mask: AttentionMask, dropout_p: float,
               scale: float | None) -> Tensor:
        """q ``(B, h, S, d)``, k/v ``(B, h, S_k, d)`` → context ``(B, h, S, d)``.

        Raises:
            IncompatibleComponentError: cross-attention (keys from another sequence).
            InputError: packed ``(T, h, d)`` input.
        """
        if query.dim() != 4 or mask.cu_seqlens is not None:
            raise InputError(
                f"attention 'example:sliding-window' takes padded (B, h, S, d) input, got shape "
                f"{tuple(query.shape)}; packed (T, h, d) input needs a variable-length attention such as 'flash'"
            )
        s_q, s_k = query.shape[-2], key.shape[-2]
        if s_k != s_q + mask.query_offset:
            raise IncompatibleComponentError(
                f"attention 'example:sliding-window' cannot give cross-attention (S={s_q} queries, S_k={s_k} "
                "keys); use attention='eager' or attention='auto'"
            )
        attn_mask, empty = self._mask(mask, query, s_q, s_k)
        context = F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)
        return context.masked_fill(empty, 0.0)  # rows that see no key give zeros

    def _mask(self, mask: AttentionMask, query: Tensor, s_q: int, s_k: int) -> tuple[Tensor, Tensor]:
        """SDPA's mask (the band combined with the model's mask) and the empty rows, once per forward."""
        cache_key = ("example:sliding-window", self.window, s_q, s_k, query.dtype, str(query.device))
        if cache_key not in mask.cache:
            band = window_band(s_q, s_k, mask.query_offset, self.window, query.device)  # (S, S_k)
            allowed = boolean_mask(mask, s_q, s_k, query.device)  # (B|1, 1|h, S|1, S_k) or None
            allowed = band if allowed is None else allowed & band
            attn_mask: Tensor = allowed
            if mask.explicit is not None and mask.explicit.dtype != torch.bool:  # keep an additive mask's values
                bias = additive_mask(mask, s_q, s_k, query.dtype, query.device)
                assert bias is not None
                attn_mask = bias.masked_fill(~band, torch.finfo(query.dtype).min)
            empty = ~allowed.any(dim=-1, keepdim=True)  # (B|1, 1|h, S, 1)
            mask.cache[cache_key] = (attn_mask, empty)
        return mask.cache[cache_key]
