"""Attention masks: one :class:`~bertzoo.interfaces.AttentionMask` per forward, converted on demand.

The trunk describes what each query may see once per forward (key padding, causality, cache
offset, or a user-given 4-D mask). Each attention implementation asks for the form its kernel
wants through the helpers below; the result is cached in ``mask.cache`` so the conversion runs
once per forward, not once per layer:

- :func:`boolean_mask`: ``(B|1, 1|h, S, S_k)`` bool, True = may attend (SDPA's ``attn_mask``).
- :func:`additive_mask`: the same as an additive float mask, 0 = attend, ``finfo(dtype).min`` =
  masked (eager; transformers' convention).
- :func:`empty_rows`: ``(B|1, 1, S|1, 1)`` bool, True where a query sees no key at all. Such rows
  must come out as zeros (DESIGN: deterministic, identical across implementations).

Semantics (transformers 5 ``masking_utils``): key ``j`` is visible to query ``i`` iff the key is a
real token and, when causal, ``j <= i + query_offset``, and with a ``window`` ``|i + query_offset -
j| <= window``. A 4-D ``explicit`` mask is used as given (causality is *not* added to it): float
masks are additive, bool masks are True = attend. A position ``bias`` is part of the additive form
only (:func:`additive_mask` = bias + 0 / ``finfo.min``); the boolean form says what is visible.

Packed batches (``cu_seqlens``) are described by :mod:`bertzoo.model.packing`.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from bertzoo.interfaces import AttentionMask
from bertzoo.model.packing import OFFSETS

WINDOWED = "bertzoo:windowed"  # mask.cache key prefix of the windowed variants made by windowed()


def windowed(mask: AttentionMask, window: int | None) -> AttentionMask:
    """``mask`` restricted to ``|i - j| <= window`` (None: ``mask`` itself), made once per forward.

    The variant shares everything else (padding, bias, packing offsets) and has its own conversion
    cache, kept in ``mask.cache``, so the local layers of a forward share one windowed mask.
    """
    if window is None or window == mask.window:
        return mask
    key = (WINDOWED, window)
    child = mask.cache.get(key)
    if child is None:
        child = replace(mask, window=int(window), cache={})
        if OFFSETS in mask.cache:
            child.cache[OFFSETS] = mask.cache[OFFSETS]
        mask.cache[key] = child
    return child


def window_band(q_len: int, k_len: int, query_offset: int, window: int, device: torch.device | str | None = None
                ) -> Tensor:
    """``(S, S_k)`` bool, True where query ``i`` may see key ``j``: ``|i + query_offset - j| <= window``."""
    q_pos = torch.arange(q_len, device=device)[:, None] + query_offset  # (S, 1)
    k_pos = torch.arange(k_len, device=device)[None, :]  # (1, S_k)
    return (q_pos - k_pos).abs() <= window


def bias_block(bias: Tensor, n: int) -> Tensor:
    """A packed sequence's bias: the top-left ``n × n`` block of ``bias`` as ``(1, 1|h, n, n)``."""
    block = bias[..., :n, :n]
    while block.dim() < 4:
        block = block.unsqueeze(0)
    return block


def boolean_mask(mask: AttentionMask, q_len: int, k_len: int, device: torch.device) -> Tensor | None:
    """``(B|1, 1|h, S, S_k)`` bool, True = attend; None when every query sees every key.

    Broadcast dimensions stay size 1 (a pure padding mask is ``(B, 1, 1, S_k)``).
    """
    key = ("bool", q_len, k_len, str(device))
    if key in mask.cache:
        return mask.cache[key]
    allowed: Tensor | None = None
    if mask.explicit is not None:
        explicit = mask.explicit.to(device)
        if explicit.dtype == torch.bool:
            allowed = explicit
        else:  # additive float: anything near the dtype minimum (or -inf) is masked
            allowed = explicit > torch.finfo(explicit.dtype).min / 2
    else:
        if mask.key_padding is not None:
            allowed = mask.key_padding.to(device=device, dtype=torch.bool)[:, None, None, :]  # (B, 1, 1, S_k)
        if mask.causal:
            q_pos = torch.arange(q_len, device=device)[:, None] + mask.query_offset  # (S, 1)
            k_pos = torch.arange(k_len, device=device)[None, :]  # (1, S_k)
            causal = (k_pos <= q_pos)[None, None]  # (1, 1, S, S_k)
            allowed = causal if allowed is None else allowed & causal
    if mask.window is not None:
        band = window_band(q_len, k_len, mask.query_offset, mask.window, device)[None, None]  # (1, 1, S, S_k)
        allowed = band if allowed is None else allowed & band
    mask.cache[key] = allowed
    return allowed


def additive_mask(mask: AttentionMask, q_len: int, k_len: int, dtype: torch.dtype, device: torch.device) -> Tensor | None:
    """``(B|1, 1|h, S, S_k)`` float in ``dtype``: 0 = attend, ``finfo(dtype).min`` = masked; None = no mask."""
    key = ("additive", q_len, k_len, dtype, str(device))
    if key in mask.cache:
        return mask.cache[key]
    additive: Tensor | None
    if mask.explicit is not None and mask.explicit.dtype != torch.bool:
        additive = mask.explicit.to(device=device, dtype=dtype)  # used as given, like transformers
        if mask.window is not None:
            band = window_band(q_len, k_len, mask.query_offset, mask.window, device)
            additive = additive.masked_fill(~band, torch.finfo(dtype).min)
    else:
        allowed = boolean_mask(mask, q_len, k_len, device)
        if allowed is None:
            additive = None
        else:
            zero = torch.zeros((), dtype=dtype, device=device)
            additive = torch.where(allowed, zero, torch.finfo(dtype).min)
    if mask.bias is not None:
        bias = mask.bias.to(device=device, dtype=dtype)
        # bias first, then the mask: MPNet's order (scores += bias; scores + mask), bitwise at visible keys
        additive = bias if additive is None else bias + additive
    mask.cache[key] = additive
    return additive


def empty_rows(mask: AttentionMask, q_len: int, k_len: int, device: torch.device) -> Tensor | None:
    """``(B|1, 1|h, S|1, 1)`` bool, True where a query sees no key; None when that cannot happen.

    Without padding or an explicit mask no row can be empty (a causal query always sees
    itself), so the common unpadded case costs nothing. Otherwise this is decided on the
    device, without a host sync.
    """
    if mask.key_padding is None and mask.explicit is None:
        return None  # a window always keeps the query's own position
    key = ("empty_rows", q_len, k_len, str(device))
    if key in mask.cache:
        return mask.cache[key]
    allowed = boolean_mask(mask, q_len, k_len, device)
    empty = None if allowed is None else ~allowed.any(dim=-1, keepdim=True)
    mask.cache[key] = empty
    return empty


def padding_mask(attention_mask: Tensor | None) -> Tensor | None:
    """A user's 2-D ``(B, S_k)`` mask (bool, int or 0/1 float; nonzero = real token) → bool, or None."""
    if attention_mask is None:
        return None
    return attention_mask if attention_mask.dtype == torch.bool else attention_mask != 0


def self_attention_mask(
    attention_mask: Tensor | None, *, causal: bool, query_offset: int = 0
) -> AttentionMask:
    """The self-attention description for a trunk forward.

    Args:
        attention_mask: None, ``(B, S_k)`` padding mask (nonzero = real token; ``S_k`` = cache
            length + S), or a prepared 4-D mask ``(B|1, 1|h, S, S_k)`` used as given.
        causal: decoder self-attention (ignored for a 4-D mask, which is complete as given).
        query_offset: tokens already in the KV cache.
    """
    if attention_mask is not None and attention_mask.dim() == 4:
        return AttentionMask(explicit=attention_mask, query_offset=query_offset)
    return AttentionMask(key_padding=padding_mask(attention_mask), causal=causal, query_offset=query_offset)


def cross_attention_mask(encoder_attention_mask: Tensor | None) -> AttentionMask:
    """The cross-attention description: padding of the encoder states only, never causal."""
    if encoder_attention_mask is not None and encoder_attention_mask.dim() == 4:
        return AttentionMask(explicit=encoder_attention_mask)
    return AttentionMask(key_padding=padding_mask(encoder_attention_mask))
