"""Variable-length attention over packed tokens (no padding enters the layers).

Packed layout: q/k/v ``(T, h, d)`` where ``T`` is the total of real tokens of the batch, with
``mask.cu_seqlens`` ``(B + 1,)`` the offsets of each sequence and ``mask.max_seqlen`` the longest.
Output ``(T, h, d)``.

Kernels, chosen per call by device:

- CPU: one SDPA call per sequence on strided views of the packed tensors (:func:`varlen_loop`):
  nothing copied, no padding computed. The alternative, :data:`CPU_BUCKETS` = True, groups
  sequences by padded width (:func:`bertzoo.model.packing.bucket_width`: a multiple of 8, at most
  1/8 of the length above 64 tokens) into one masked ``(m, h, L, d)`` SDPA call per bucket
  (:func:`varlen_bucketed`): one parallel region per bucket instead of one per sequence, against
  the stall of per-sequence OpenMP regions when other processes hold cores. Measured slower on
  the main job (see :data:`CPU_BUCKETS`), so it is off. Both give a sequence the same result bit
  for bit whatever else is in its batch. ``benchmarks/attention_micro.py`` measures the routes
  (FlexAttention too: ~40 s to compile, a block mask per batch, no faster).
- CUDA, fp16/bf16, no dropout: ``flash_attn.flash_attn_varlen_func`` when the flash-attn
  package is installed, else ``torch.nn.attention.varlen.varlen_attn``. Other CUDA cases
  (fp32, dropout) use the per-sequence loop.

Padded ``(B, h, S, d)`` self-attention input is accepted too: real tokens are gathered once per
forward (indices cached in ``mask.cache``), attended variable-length and scattered back, so
padded query positions give zeros (eager gives them values; tests compare real positions).
Masks with holes (padding between real tokens) are exact too: gathering keeps the order.
A position bias (``mask.bias``, each sequence adds its top-left block) and a local window
(``mask.window``, within each sequence) are applied in every path; with a bias, CUDA runs the
per-sequence loop (the fused kernels take no bias).
Not supported: cross-attention, a KV cache offset, explicit additive masks, weights, head_mask.
"""

from __future__ import annotations

from itertools import pairwise
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from bertzoo.errors import IncompatibleComponentError, InputError
from bertzoo.interfaces import AttentionCapabilities, AttentionMask
from bertzoo.model.masks import bias_block, window_band
from bertzoo.model.packing import OFFSETS, Bucket, BucketPlan, Packing, bucket_plan, packing_from_mask
from bertzoo.plugins.attention_base import ProbabilityFreeAttention
from bertzoo.plugins.register_flash import FLASH_CAPABILITIES

BUCKETS = "bertzoo:flash:buckets"  # mask.cache key: the BucketPlan of a packed forward
# CPU packed attention by length buckets instead of the per-sequence loop: off, because measured on
# bertzoo.embed (all-MiniLM-L6-v2, 300 corpus paragraphs, best of 4 alternated, 2-core AVX2 EPYC)
# the buckets took 3.66 s against the loop's 3.21 s on a quiet machine and 6.74 s against 6.81 s
# beside a one-thread matmul process: the stall they were built against did not reproduce
CPU_BUCKETS = False


def _offsets(mask: AttentionMask) -> list[int]:
    """``cu_seqlens`` as a Python list, read once per forward (a device sync on GPU) and kept in
    ``mask.cache[OFFSETS]``; the trunk's packed path puts it there when it packs."""
    cached = mask.cache.get(OFFSETS)
    if cached is None:
        if mask.cu_seqlens is None:
            raise InputError(
                "packed (T, h, d) attention input needs mask.cu_seqlens, the (B + 1,) offsets of each "
                "sequence; build the AttentionMask with cu_seqlens and max_seqlen"
            )
        cached = [int(x) for x in mask.cu_seqlens.tolist()]
        mask.cache[OFFSETS] = cached
    return cached


def _extra_mask(q: Tensor, n: int, bias: Tensor | None, window: int | None) -> Tensor | None:
    """``(1, 1|h, n, n)`` additive bias and/or band for a sequence of length ``n``, or None."""
    band = window_band(n, n, 0, window, q.device) if window is not None else None
    if bias is None:
        return band
    block = bias_block(bias, n).to(device=q.device, dtype=q.dtype)
    return block if band is None else block.masked_fill(~band, torch.finfo(q.dtype).min)


def varlen_loop(q: Tensor, k: Tensor, v: Tensor, offsets: list[int], *, causal: bool,
                dropout_p: float, scale: float | None, bias: Tensor | None = None,
                window: int | None = None) -> Tensor:
    """Per-sequence SDPA over packed ``(T, h, d)`` tensors; every device and dtype SDPA has.

    When every sequence has the same length (an unpadded batch) it is one batched call instead.
    ``bias`` (a position bias, :attr:`~bertzoo.interfaces.AttentionMask.bias`): sequence ``i`` of
    length ``n`` adds its top-left ``n × n`` block; ``window``: keys with ``|i - j| <= window`` only.
    """
    lengths = {end - start for start, end in pairwise(offsets)}
    if len(lengths) == 1 and len(offsets) > 2 and offsets[-1]:
        batch, length = len(offsets) - 1, offsets[-1] // (len(offsets) - 1)

        def batched(t: Tensor) -> Tensor:
            return t.unflatten(0, (batch, length)).transpose(1, 2)  # (B, h, L, d) view

        o = F.scaled_dot_product_attention(batched(q), batched(k), batched(v),
                                           attn_mask=_extra_mask(q, length, bias, window),
                                           dropout_p=dropout_p, is_causal=causal, scale=scale)
        return o.transpose(1, 2).reshape(q.shape[0], q.shape[1], v.shape[-1])
    outs = []
    for start, end in pairwise(offsets):
        if end == start:
            continue
        # (L, h, d) -> (1, h, L, d) views: no copy, the kernels read strided input
        o = F.scaled_dot_product_attention(
            q[start:end].transpose(0, 1)[None], k[start:end].transpose(0, 1)[None],
            v[start:end].transpose(0, 1)[None], attn_mask=_extra_mask(q, end - start, bias, window),
            dropout_p=dropout_p, is_causal=causal, scale=scale,
        )
        outs.append(o[0].transpose(0, 1))
    if not outs:
        return q.new_zeros(q.shape[:-1] + v.shape[-1:])
    return torch.cat(outs)


def _bucket_mask(plan: BucketPlan, bucket: Bucket, *, causal: bool, bias: Tensor | None, window: int | None,
                 dtype: torch.dtype) -> Tensor:
    """``(m|1, 1|h, L, L)`` bool (True = attend) or additive mask of one bucket; once per forward.

    Padding keys are masked; padding queries (dropped afterwards) see every key, so no row is
    empty (an empty row would put NaN into the backward pass). A bucket without padding gets an
    all-True mask all the same: the kernel then runs one code path whatever the bucket holds,
    so a sequence's result does not depend on its batch (bit for bit).
    """
    key = (id(bucket), causal, window, None if bias is None else (id(bias), dtype))
    if key in plan.cache:
        return plan.cache[key]  # type: ignore[no-any-return]
    width, device = bucket.width, bucket.rows.device
    real = bucket.real if bucket.real is not None else torch.ones(1, width, dtype=torch.bool, device=device)
    allowed = real[:, None, None, :]  # (m|1, 1, 1, L)
    if causal:
        allowed = allowed & torch.ones(width, width, dtype=torch.bool, device=device).tril()[None, None]
    if window is not None:
        allowed = allowed & window_band(width, width, 0, window, device)[None, None]
    allowed = allowed | ~real[:, None, :, None]
    mask = allowed
    if bias is not None:
        # the bias covers the longest sequence; the padded width may be wider (padding keys are masked)
        have = min(width, bias.shape[-1])
        block = F.pad(bias_block(bias, have), (0, width - have, 0, width - have))
        mask = block.to(device=device, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    plan.cache[key] = mask
    return mask


def varlen_bucketed(q: Tensor, k: Tensor, v: Tensor, plan: BucketPlan, *, causal: bool, dropout_p: float,
                    scale: float | None, bias: Tensor | None = None, window: int | None = None) -> Tensor:
    """Packed ``(T, h, d)`` attention as one batched SDPA call per length bucket (:class:`BucketPlan`).

    Each bucket gathers its sequences into ``(m, L, h, d)``, padded to its longest, and runs one
    kernel over all of them and every head, so a forward opens a parallel region per bucket
    (a few) instead of one per sequence. ``bias`` and ``window`` as :func:`varlen_loop`.
    """
    outs = []
    for bucket in plan.buckets:
        mask = _bucket_mask(plan, bucket, causal=causal, bias=bias, window=window, dtype=q.dtype)
        # (m, L, h, d) gathered (or a view of consecutive rows), seen as (m, h, L, d): the CPU kernels
        # read strided input
        if bucket.start is not None:
            m, width = bucket.rows.shape
            span = slice(bucket.start, bucket.start + m * width)
            qb, kb, vb = (t[span].unflatten(0, (m, width)).transpose(1, 2) for t in (q, k, v))
        else:
            qb, kb, vb = (t[bucket.rows].transpose(1, 2) for t in (q, k, v))
        o = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, dropout_p=dropout_p, scale=scale)
        o = o.transpose(1, 2).flatten(0, 1)  # (m · L, h, d)
        outs.append(o if bucket.keep is None else o.index_select(0, bucket.keep))
    if not outs:
        return q.new_zeros(q.shape[:-1] + v.shape[-1:])
    out = torch.cat(outs) if len(outs) > 1 else outs[0]
    return out if plan.order is None else out.index_select(0, plan.order)


def _bucket_plan(mask: AttentionMask, offsets: list[int], device: torch.device) -> BucketPlan:
    """The mask's :class:`BucketPlan`, made once per forward (kept in ``mask.cache``)."""
    plan = mask.cache.get(BUCKETS)
    if plan is None:
        plan = mask.cache[BUCKETS] = bucket_plan(offsets, device)
    return plan  # type: ignore[no-any-return]


def _cuda_varlen(q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask, *, causal: bool,
                 scale: float | None) -> Tensor | None:
    """A fused CUDA varlen kernel (flash-attn package, then torch's), or None when none applies
    (a position bias: the fused kernels take none; the per-sequence loop adds it)."""
    if q.dtype not in (torch.float16, torch.bfloat16) or mask.cu_seqlens is None or mask.bias is not None:
        return None
    w = -1 if mask.window is None else int(mask.window)
    cu = mask.cu_seqlens.to(device=q.device, dtype=torch.int32)
    max_len = int(mask.max_seqlen) or int((cu[1:] - cu[:-1]).max())
    try:
        from flash_attn import flash_attn_varlen_func
    except ImportError:
        flash_attn_varlen_func = None
    if flash_attn_varlen_func is not None:
        return flash_attn_varlen_func(q, k, v, cu, cu, max_len, max_len, dropout_p=0.0,
                                      softmax_scale=scale, causal=causal, window_size=(w, 0 if causal else w))
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:  # torch < 2.10
        return None
    return varlen_attn(q, k, v, cu, cu, max_len, max_len, scale=scale,
                       window_size=(w, 0) if causal else (w, w))


def _gather_plan(mask: AttentionMask, b: int, s: int, device: torch.device) -> tuple[Packing, AttentionMask]:
    """For padded input: the :class:`~bertzoo.model.packing.Packing` of the batch and its packed mask, once per forward.

    Padding anywhere (left, right, holes) is dropped: gathering keeps each row's real tokens in
    order, so every real query sees the same real keys (and, causal, the same earlier ones) as
    under the padded mask.
    """
    cached = mask.cache.get(("bertzoo:flash:plan", b, s))
    if cached is not None:
        return cached
    packing = packing_from_mask(mask.key_padding, b, s, device, allow_holes=True)
    assert packing is not None  # allow_holes: every mask packs
    packed = packing.attention_mask(causal=mask.causal)
    # relative: a sequence's bias block and window are the same wherever its tokens sat in the row
    packed.bias, packed.window = mask.bias, mask.window
    plan = (packing, packed)
    mask.cache[("bertzoo:flash:plan", b, s)] = plan
    return plan


class FlashAttention(ProbabilityFreeAttention):
    """Variable-length attention (packed ``(T, h, d)`` or padded self-attention input); no parameters,
    weights or head_mask.

    Built by the factory as ``FlashAttention(spec)``.
    """

    capabilities: ClassVar[AttentionCapabilities] = FLASH_CAPABILITIES
    component: ClassVar[str] = "bertzoo:flash"

    def attend(self, query: Tensor, key: Tensor, value: Tensor, *, mask: AttentionMask, dropout_p: float,
               scale: float | None) -> Tensor:
        """Packed q/k/v ``(T, h, d)`` → ``(T, h, d)``; or padded ``(B, h, S, d)`` → ``(B, h, S, d)``.

        Raises:
            IncompatibleComponentError: cross-attention, a cache offset or an explicit additive mask.
            InputError: packed input without ``cu_seqlens``.
        """
        self._check(query, key, mask)
        if query.dim() == 3:
            return self._packed(query, key, value, mask, dropout_p, scale)
        # padded self-attention: gather real tokens, attend packed, scatter back with zeros at padding
        b, h, s, d = query.shape
        packing, packed_mask = _gather_plan(mask, b, s, query.device)

        def pack(t: Tensor) -> Tensor:
            return packing.pack(t.transpose(1, 2))  # (B, S, h, d) -> (T, h, d)

        out = self._packed(pack(query), pack(key), pack(value), packed_mask, dropout_p, scale)
        return packing.unpack(out).transpose(1, 2)  # (B, h, S, d), zeros at padding

    def _packed(self, q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask, dropout_p: float,
                scale: float | None) -> Tensor:
        if q.is_cuda and dropout_p == 0.0:
            out = _cuda_varlen(q, k, v, mask, causal=mask.causal, scale=scale)
            if out is not None:
                return out
        offsets = _offsets(mask)
        if q.device.type == "cpu" and CPU_BUCKETS:
            return varlen_bucketed(q, k, v, _bucket_plan(mask, offsets, q.device), causal=mask.causal,
                                   dropout_p=dropout_p, scale=scale, bias=mask.bias, window=mask.window)
        return varlen_loop(q, k, v, offsets, causal=mask.causal, dropout_p=dropout_p, scale=scale,
                           bias=mask.bias, window=mask.window)

    @staticmethod
    def _check(query: Tensor, key: Tensor, mask: AttentionMask) -> None:
        refused = []
        if mask.explicit is not None:
            refused.append("an explicit additive attention mask")
        if mask.query_offset:
            refused.append("a KV cache (query_offset > 0)")
        if query.shape[:-1] != key.shape[:-1]:
            refused.append(f"cross-attention (query {tuple(query.shape)} vs key {tuple(key.shape)})")
        if refused:
            raise IncompatibleComponentError(
                f"attention 'bertzoo:flash' cannot give {', '.join(refused)}: it runs packed self-attention "
                "only; use attention='sdpa' or 'eager', or attention='auto'"
            )
        if query.dim() not in (3, 4):
            raise InputError(
                f"attention 'bertzoo:flash' takes packed (T, h, d) or padded (B, h, S, d) input, got shape "
                f"{tuple(query.shape)}"
            )
