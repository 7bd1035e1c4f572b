"""Conformance of an attention implementation against the eager definition.

The oracle is the eager definition written out in float64 (:func:`attention_reference`):
softmax(q·kᵀ·scale + mask) × head_mask · v, rows with no visible key give zeros. Every
capability the implementation declares is exercised; every one it does not declare must be
refused by :func:`bertzoo.selection.choose` and by the call itself with an
:class:`~bertzoo.errors.IncompatibleComponentError`. Comparisons are on real query positions
only (DESIGN.md: padded positions are unspecified). Tolerances: :data:`TOLERANCES`.

An implementation that attends to a subset of the keys on purpose (sliding window, block
sparse) passes ``visible``: ``visible(s_q, s_k, query_offset) -> (s_q, s_k) bool``, True
where query ``i`` may see key ``j`` on top of the mask, and the reference applies it too.

An implementation that changes the scores on purpose (position biases: ALiBi, relative
position buckets; rotary embeddings applied inside the op) passes ``score_bias``:
``score_bias(query, key, query_offset) -> Tensor`` broadcastable to ``(B, h, S, S_k)``, the
additive bias the reference adds to ``q·kᵀ·scale`` before masking. It gets the float64
``query`` ``(B, h, S, d)`` and ``key`` ``(B, h, S_k, d)``; query ``i`` sits at position
``i + query_offset`` and key ``j`` at ``j``. ALiBi returns ``-slope[h] * |i + offset - j|``; rotary
returns ``(rot(q)·rot(k)ᵀ - q·kᵀ)·scale``. Both hooks can also be given once, at registration:
``conformance={"visible": ..., "score_bias": ...}`` (a callable or a ``"module:attr"`` string),
so ``pytest --bertzoo-conformance`` checks the component with them.

An implementation that declares ``position_bias`` (honours :attr:`AttentionMask.bias`, the trunk's
per-forward position bias) or ``window`` (honours :attr:`AttentionMask.window`, local attention)
is checked with them too, padded and (``varlen``) packed.

Shape legend: ``B`` batch, ``h`` heads, ``S`` query length, ``S_k`` key length, ``d`` head size,
``T`` real tokens of a packed batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bertzoo.dtypes import dtype_name
from bertzoo.errors import BertzooError, IncompatibleComponentError
from bertzoo.interfaces import AttentionMask
from bertzoo.model.masks import window_band
from bertzoo.registry import ComponentRecord, Registry
from bertzoo.selection import Request, choose
from bertzoo.spec import ModelSpec
from bertzoo.testing._base import (
    DTYPE_IDS,
    TOLERANCES,
    Case,
    CaseFailed,
    compare,
    expect,
    expect_raises,
    guarded,
    hinted,
)

Visible = Callable[[int, int, int], Tensor]
ScoreBias = Callable[[Tensor, Tensor, int], Tensor]

B, H, S, D = 4, 3, 9, 8  # batch, heads, queries, head size: small, but not square and not powers of two
S_ENC = 13  # encoder length for cross-attention
OFFSET = 5  # cached positions for the KV-cache case
SCALE = D**-0.5

# request -> the capability whose absence choose() must report
REFUSALS: dict[str, Request] = {
    "causal": Request(causal=True),
    "cross_attention": Request(cross_attention=True),
    "kv_cache": Request(kv_cache=True),
    "returns_weights": Request(returns_weights=True),
    "head_mask": Request(head_mask=True),
    "dropout": Request(dropout=True),
    "varlen": Request(varlen=True),
}


# -- inputs and the reference ---------------------------------------------------------------------------


def random_qkv(s_k: int = S, dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """q ``(B, h, S, d)``, k/v ``(B, h, s_k, d)`` from a seeded generator, in ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, S, D, generator=g).to(dtype)
    k = torch.randn(B, H, s_k, D, generator=g).to(dtype)
    v = torch.randn(B, H, s_k, D, generator=g).to(dtype)
    return q, k, v


def random_padding(n: int, *, left: bool = False, seed: int = 0) -> Tensor:
    """``(B, n)`` bool, True = real: row 0 full, row 1 fully padded, the others random lengths."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, n + 1, (B,), generator=g)
    lengths[0], lengths[1] = n, 0
    pos = torch.arange(n)[None, :]
    return pos >= (n - lengths)[:, None] if left else pos < lengths[:, None]


def attention_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: AttentionMask,
    scale: float,
    head_mask: Tensor | None = None,
    visible: Visible | None = None,
    score_bias: ScoreBias | None = None,
) -> tuple[Tensor, Tensor]:
    """The eager definition in float64 → (context ``(B, h, S, d)``, probabilities ``(B, h, S, S_k)``).

    Key ``j`` is visible to query ``i`` iff it is a real token (``mask.key_padding``), and when
    causal ``j <= i + mask.query_offset``, within ``mask.window`` when set, and
    ``visible(S, S_k, offset)[i, j]`` if given. An explicit float mask, ``mask.bias`` and
    ``score_bias(q, k, offset)`` (if given) are added to the scores. Rows with no visible key give zeros.
    """
    q, k, v = q.double(), k.double(), v.double()
    s_q, s_k = q.shape[-2], k.shape[-2]
    scores = q @ k.transpose(-1, -2) * scale  # (B, h, S, S_k)
    if score_bias is not None:
        scores = scores + score_bias(q, k, mask.query_offset).double().cpu()
    if mask.bias is not None:  # a position bias the trunk hands every layer (AttentionMask.bias)
        scores = scores + mask.bias.double().cpu()[..., :s_q, :s_k]
    allowed = torch.ones(1, 1, s_q, s_k, dtype=torch.bool)
    if mask.window is not None:
        allowed = allowed & window_band(s_q, s_k, mask.query_offset, mask.window)
    if mask.key_padding is not None:
        allowed = allowed & mask.key_padding.cpu()[:, None, None, :]
    if mask.causal:
        allowed = allowed & (torch.arange(s_k)[None, :] <= torch.arange(s_q)[:, None] + mask.query_offset)
    if visible is not None:
        allowed = allowed & visible(s_q, s_k, mask.query_offset).cpu()
    if mask.explicit is not None:
        scores = scores + mask.explicit.double().cpu()
    probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0)
    if head_mask is not None:
        probs = probs * head_mask.double().cpu().view(1, -1, 1, 1)
    return probs @ v, probs


def pack(t: Tensor, padding: Tensor) -> Tensor:
    """``(B, h, S, d)`` padded → ``(T, h, d)``: the real tokens in batch order."""
    return t.transpose(1, 2)[padding]


def _real_rows(padding: Tensor | None, n: int = S) -> Tensor:
    """``(B, 1, S, 1)`` bool: the query positions that count (real tokens of self-attention)."""
    if padding is None:
        return torch.ones(B, 1, n, 1, dtype=torch.bool)
    return padding[:, None, -n:, None]


# -- the cases ------------------------------------------------------------------------------------------


class _Subject:
    """One attention implementation under test: its record, options and registry."""

    def __init__(self, record: ComponentRecord, options: Mapping[str, Any], registry: Registry,
                 visible: Visible | None, score_bias: ScoreBias | None) -> None:
        self.record = record
        self.options = dict(options)
        self.registry = registry
        self.visible = visible
        self.score_bias = score_bias
        self.caps = record.capabilities
        self.name = record.full_name

    def build(self) -> Any:
        return self.record.build(ModelSpec(hidden_size=H * D, num_attention_heads=H), **self.options)

    def call(self, q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask, **kw: Any) -> tuple[Tensor, Tensor | None]:
        args: dict[str, Any] = {"dropout_p": 0.0, "scale": SCALE, "need_weights": False, "head_mask": None} | kw
        return self.build()(q, k, v, mask=mask, **args)

    def reference(self, q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask,
                  head_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return attention_reference(q, k, v, mask, SCALE, head_mask=head_mask, visible=self.visible,
                                   score_bias=self.score_bias)

    def has(self, capability: str) -> bool:
        return bool(self.caps.get(capability, False))

    def dtypes(self) -> list[torch.dtype]:
        declared = self.caps.get("dtypes", ("float32", "bfloat16", "float16"))
        return [dt for dt in TOLERANCES if dtype_name(dt) in declared]


def _check_output(out: Any, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    expect(isinstance(out, tuple) and len(out) == 2,
           f"the call must return (context, weights or None), got {type(out).__name__}")
    context = out[0]
    expect(isinstance(context, Tensor), f"context is a {type(context).__name__}, not a Tensor")
    expect(tuple(context.shape) == shape, f"context has shape {tuple(context.shape)}, expected {shape}")
    expect(context.dtype == dtype, f"context has dtype {context.dtype}, expected {dtype} (the input dtype)")
    return context


def _padding_case(s: _Subject, layout: str, dtype: torch.dtype) -> None:
    q, k, v = random_qkv(dtype=dtype)
    padding = None if layout == "none" else random_padding(S, left=layout == "left")
    mask = AttentionMask(key_padding=padding)
    out = s.call(q, k, v, mask)
    context = _check_output(out, (B, H, S, D), dtype)
    expect(out[1] is None, "weights were returned although need_weights=False")
    compare("context", context, s.reference(q, k, v, mask)[0], atol=TOLERANCES[dtype], rows=_real_rows(padding))
    if padding is not None:
        expect(bool(torch.equal(context[1], torch.zeros_like(context[1]))),
               f"the fully padded sequence (batch 1) sees no key and must give exact zeros, got max "
               f"|value| {float(context[1].double().abs().nan_to_num(float('inf')).max()):.3g}")


def _dtype_case(s: _Subject, dtype: torch.dtype) -> None:
    q, k, v = random_qkv(dtype=dtype)
    padding = random_padding(S)
    mask = AttentionMask(key_padding=padding)
    context = _check_output(s.call(q, k, v, mask), (B, H, S, D), dtype)
    compare("context", context, s.reference(q, k, v, mask)[0], atol=TOLERANCES[dtype], rows=_real_rows(padding))


def _mask_reuse_case(s: _Subject) -> None:
    """One AttentionMask serves every layer of a forward: a second call must give the same result."""
    q, k, v = random_qkv()
    mask = AttentionMask(key_padding=random_padding(S))
    first, _ = s.call(q, k, v, mask)
    second, _ = s.call(q, k, v, mask)
    compare("context of the second call with the same mask (its cache filled)", second, first, atol=0.0)


def _causal_case(s: _Subject, padded: bool, dtype: torch.dtype) -> None:
    q, k, v = random_qkv(dtype=dtype)
    padding = random_padding(S) if padded else None
    mask = AttentionMask(key_padding=padding, causal=True)
    context = _check_output(s.call(q, k, v, mask), (B, H, S, D), dtype)
    compare("causal context", context, s.reference(q, k, v, mask)[0], atol=TOLERANCES[dtype], rows=_real_rows(padding))


def _cache_offset_case(s: _Subject, padded: bool) -> None:
    """Query i sees keys <= i + offset (the keys include ``OFFSET`` cached positions)."""
    q, k, v = random_qkv(s_k=S + OFFSET)
    padding = random_padding(S + OFFSET, left=True) if padded else None  # decoders pad on the left
    mask = AttentionMask(key_padding=padding, causal=True, query_offset=OFFSET)
    context = _check_output(s.call(q, k, v, mask), (B, H, S, D), torch.float32)
    compare("context with a cache offset", context, s.reference(q, k, v, mask)[0],
            atol=TOLERANCES[torch.float32], rows=_real_rows(padding))


def _cross_case(s: _Subject, dtype: torch.dtype) -> None:
    q, k, v = random_qkv(s_k=S_ENC, dtype=dtype)
    mask = AttentionMask(key_padding=random_padding(S_ENC))
    context = _check_output(s.call(q, k, v, mask), (B, H, S, D), dtype)
    compare("cross-attention context", context, s.reference(q, k, v, mask)[0], atol=TOLERANCES[dtype])
    expect(bool(torch.equal(context[1], torch.zeros_like(context[1]))),
           "batch 1 has no encoder token at all; its queries must give exact zeros")


def _weights_case(s: _Subject) -> None:
    q, k, v = random_qkv()
    padding = random_padding(S)
    mask = AttentionMask(key_padding=padding)
    ref, probs = s.reference(q, k, v, mask)
    context, weights = s.call(q, k, v, mask, need_weights=True)
    expect(weights is not None, "need_weights=True returned no weights although returns_weights is declared")
    assert weights is not None
    rows = _real_rows(padding)
    compare("attention weights", weights, probs, atol=TOLERANCES[torch.float32], rows=rows)
    compare("context", context, ref, atol=TOLERANCES[torch.float32], rows=rows)


def _head_mask_case(s: _Subject) -> None:
    q, k, v = random_qkv()
    padding = random_padding(S)
    mask = AttentionMask(key_padding=padding)
    head_mask = torch.tensor([1.0, 0.0, 0.5]).view(1, H, 1, 1)
    context, _ = s.call(q, k, v, mask, head_mask=head_mask)
    compare("context with head_mask [1, 0, 0.5]", context, s.reference(q, k, v, mask, head_mask)[0],
            atol=TOLERANCES[torch.float32], rows=_real_rows(padding))


def _dropout_case(s: _Subject) -> None:
    """Dropout changes the result, follows torch's seed, and keeps the expectation (inverted dropout)."""
    q, k, v = random_qkv()
    padding = random_padding(S)
    mask = AttentionMask(key_padding=padding)
    ref = s.reference(q, k, v, mask)[0]
    rows = _real_rows(padding).expand_as(ref)
    torch.manual_seed(1)
    first, _ = s.call(q, k, v, mask, dropout_p=0.5)
    torch.manual_seed(1)
    again, _ = s.call(q, k, v, mask, dropout_p=0.5)
    expect(bool(torch.isfinite(first).all()), "dropout_p=0.5 gave NaN or inf")
    compare("context under the same torch seed", again, first, atol=0.0)
    changed = float((first.double()[rows] - ref[rows]).abs().max())
    expect(changed > 1e-3, f"dropout_p=0.5 changed the context by only {changed:.3g}: dropout is not applied")
    draws = torch.stack([s.call(q, k, v, mask, dropout_p=0.5)[0] for _ in range(200)]).double().mean(0)
    bias = float((draws[rows] - ref[rows]).abs().mean())
    expect(bias < 0.1, f"the mean of 200 dropout draws is {bias:.3g} away from the no-dropout context "
                       "(> 0.1): dropout must rescale by 1 / (1 - p)")


def _packed_case(s: _Subject, causal: bool, dtype: torch.dtype) -> None:
    q, k, v = random_qkv(dtype=dtype)
    padding = random_padding(S)  # includes a fully padded (empty) sequence
    lengths = padding.sum(-1, dtype=torch.int32)
    cu = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    packed = AttentionMask(causal=causal, cu_seqlens=cu, max_seqlen=int(lengths.max()))
    context = _check_output(s.call(pack(q, padding), pack(k, padding), pack(v, padding), packed),
                            (int(lengths.sum()), H, D), dtype)
    ref = s.reference(q, k, v, AttentionMask(key_padding=padding, causal=causal))[0]
    compare("packed context", context, pack(ref, padding), atol=TOLERANCES[dtype], dims=("token", "head", "dim"))


def relative_bias(n: int = S, seed: int = 3) -> Tensor:
    """``(1, h, n, n)`` a bias of ``j - i`` only (a relative position bias, as MPNet's or ALiBi's), random per head."""
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(H, 2 * n - 1, generator=g)  # one value per head and distance
    distance = torch.arange(n)[None, :] - torch.arange(n)[:, None] + n - 1  # (n, n): j - i, shifted to >= 0
    return table[:, distance][None]


def _positions_case(s: _Subject, bias: bool, window: int | None, packed: bool, dtype: torch.dtype) -> None:
    """A position bias (``mask.bias``) and/or a local window (``mask.window``), padded or packed."""
    q, k, v = random_qkv(dtype=dtype)
    padding = random_padding(S)  # right padding: a packed sequence's block is the padded top-left block
    extra = {"bias": relative_bias().to(dtype) if bias else None, "window": window}
    ref = s.reference(q, k, v, AttentionMask(key_padding=padding, **extra))[0]
    if not packed:
        context = _check_output(s.call(q, k, v, AttentionMask(key_padding=padding, **extra)), (B, H, S, D), dtype)
        compare("context", context, ref, atol=TOLERANCES[dtype], rows=_real_rows(padding))
        return
    lengths = padding.sum(-1, dtype=torch.int32)
    cu = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    mask = AttentionMask(cu_seqlens=cu, max_seqlen=int(lengths.max()), **extra)
    context = _check_output(s.call(pack(q, padding), pack(k, padding), pack(v, padding), mask),
                            (int(lengths.sum()), H, D), dtype)
    compare("packed context", context, pack(ref, padding), atol=TOLERANCES[dtype], dims=("token", "head", "dim"))


def _choose_case(s: _Subject, capability: str) -> None:
    request = REFUSALS[capability]
    if s.has(capability):
        chosen = choose(s.registry, request, s.name).record.full_name
        expect(chosen == s.name, f"choose() named {s.name} for a request needing {capability} but returned {chosen}")
        return
    expect_raises(
        IncompatibleComponentError, lambda: choose(s.registry, request, s.name),
        doing=f"choose() for a request needing {capability} (not declared)",
        mentions=(s.name, capability.replace("_", "-")),
    )


def _devices_dtypes_case(s: _Subject) -> None:
    devices = s.caps.get("devices", ("cpu", "cuda"))
    dtypes = s.caps.get("dtypes", ("float32", "bfloat16", "float16"))
    for device in ("cpu", "cuda", "mps", "xla"):
        if device not in devices:
            expect_raises(IncompatibleComponentError, partial(choose, s.registry, Request(device=device), s.name),
                          doing=f"choose() on undeclared device {device}", mentions=(f"device {device}",))
    for dtype in ("float32", "bfloat16", "float16", "float64"):
        if dtype not in dtypes:
            expect_raises(IncompatibleComponentError, partial(choose, s.registry, Request(dtype=dtype), s.name),
                          doing=f"choose() for undeclared dtype {dtype}", mentions=(f"dtype {dtype}",))


def _refuses_call_case(s: _Subject, capability: str) -> None:
    """Asked directly (not through choose), an implementation refuses what it did not declare."""
    padded = AttentionMask(key_padding=random_padding(S))
    q, k, v = random_qkv()
    if capability == "returns_weights":
        expect_raises(IncompatibleComponentError, lambda: s.call(q, k, v, padded, need_weights=True),
                      doing="a call with need_weights=True", mentions=("weights",))
    elif capability == "head_mask":
        expect_raises(IncompatibleComponentError, lambda: s.call(q, k, v, padded, head_mask=torch.ones(1, H, 1, 1)),
                      doing="a call with a head_mask", mentions=("head_mask",))
    elif capability == "cross_attention":
        qc, kc, vc = random_qkv(s_k=S_ENC)
        expect_raises(IncompatibleComponentError,
                      lambda: s.call(qc, kc, vc, AttentionMask(key_padding=random_padding(S_ENC))),
                      doing=f"a cross-attention call (S={S}, S_k={S_ENC})", mentions=("cross-attention",))
    elif capability == "kv_cache":
        qc, kc, vc = random_qkv(s_k=S + OFFSET)
        expect_raises(IncompatibleComponentError,
                      lambda: s.call(qc, kc, vc, AttentionMask(causal=True, query_offset=OFFSET)),
                      doing=f"a call with a KV cache (query_offset={OFFSET})", mentions=("cache",))


def _refuses_packed_case(s: _Subject) -> None:
    t = torch.randn(10, H, D)
    packed = AttentionMask(cu_seqlens=torch.tensor([0, 4, 10], dtype=torch.int32), max_seqlen=6)
    expect_raises(BertzooError, lambda: s.call(t, t, t, packed),
                  doing="a call with packed (T, h, d) input (varlen not declared)", mentions=("packed",))


def _no_parameters_case(s: _Subject) -> None:
    """Projections stay in the layer, so checkpoint keys never depend on the attention."""
    op = s.build()
    state = op.state_dict() if isinstance(op, torch.nn.Module) else {}
    expect(not state, f"the attention op holds state {sorted(state)}; projections and weights belong in the "
                      "layer, so checkpoints do not depend on the attention implementation")


def _cuda_case(s: _Subject, dtype: torch.dtype, causal: bool) -> None:
    q, k, v = random_qkv(dtype=dtype)
    padding = random_padding(S)
    mask = AttentionMask(key_padding=padding.cuda(), causal=causal)
    context = _check_output(s.call(q.cuda(), k.cuda(), v.cuda(), mask), (B, H, S, D), dtype)
    ref = s.reference(q, k, v, AttentionMask(key_padding=padding, causal=causal))[0]
    compare("CUDA context", context.cpu(), ref, atol=TOLERANCES[dtype], rows=_real_rows(padding))
    if s.has("varlen"):
        lengths = padding.sum(-1, dtype=torch.int32)
        cu = F.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0)).cuda()
        packed = AttentionMask(causal=causal, cu_seqlens=cu, max_seqlen=int(lengths.max()))
        qp, kp, vp = (pack(t, padding).cuda() for t in (q, k, v))
        out, _ = s.call(qp, kp, vp, packed)
        compare("CUDA packed context", out.cpu(), pack(ref, padding), atol=TOLERANCES[dtype],
                dims=("token", "head", "dim"))


_MASKS = ("apply mask.key_padding (bertzoo.model.masks.boolean_mask / additive_mask give it in your kernel's "
          "form), give exact zeros for the rows bertzoo.model.masks.empty_rows marks, and keep the input dtype")
_ON_PURPOSE = ("; if the op restricts keys or biases scores on purpose, describe it to the kit with visible= / "
               "score_bias= (or conformance={'visible': ..., 'score_bias': ...} at registration)")
_DECLARE = ("declare capabilities honestly at registration: registry.register('attention', name, target, "
            "capabilities={...}); a missing key counts as False")
HINTS: dict[str, str] = {
    "setup": "the op must build as target(spec, **options) and import without error",
    "no-parameters": "keep the q/k/v and output projections in the layer; the op only combines q, k and v",
    "padding": _MASKS + _ON_PURPOSE,
    "dtype": _MASKS + _ON_PURPOSE,
    "cuda": _MASKS + _ON_PURPOSE,
    "mask-reused": "cache conversions in mask.cache under keys that include the shapes, dtype and device",
    "causal": "honour mask.causal: query i sees keys j <= i + mask.query_offset" + _ON_PURPOSE,
    "causal-cache-offset": "honour mask.query_offset: with a KV cache, query i sits at position i + offset",
    "cross-attention": "keys and values come from the encoder (S_k != S); mask.key_padding is the encoder's padding",
    "returns-weights": "with need_weights, return the probabilities (after dropout and head_mask) as the second value",
    "head-mask": "multiply the probabilities by head_mask ((1, h, 1, 1)) after dropout, before the product with v",
    "dropout": "apply inverted dropout to the probabilities: F.dropout(probs, p=dropout_p, training=True)",
    "packed": "attend within each sequence of mask.cu_seqlens for (T, h, d) input "
              "(bertzoo.plugins.flash.varlen_loop is a reference)" + _ON_PURPOSE,
    "refuses-call": "raise bertzoo.errors.IncompatibleComponentError naming what was asked for, or declare the "
                    "capability and pass its cases",
    "position-bias": "add mask.bias to q·kᵀ·scale before the mask (bertzoo.model.masks.additive_mask includes it); "
                     "packed, sequence i adds the top-left n×n block (bertzoo.model.masks.bias_block)",
    "window": "restrict keys to |i + query_offset - j| <= mask.window (bertzoo.model.masks.boolean_mask includes it); "
              "packed, within each sequence (bertzoo.model.masks.window_band)",
    "position-bias+window": "apply mask.bias and mask.window together (see the position-bias and window hints)",
    "refuses-packed": "raise a BertzooError (e.g. InputError) naming 'packed' for (T, h, d) input, or declare varlen=True",
    "choose-accepts": _DECLARE,
    "choose-refuses": _DECLARE,
    "choose-refuses-undeclared-devices-dtypes": _DECLARE,
}


def attention_cases(
    record: ComponentRecord,
    options: Mapping[str, Any],
    registry: Registry,
    *,
    visible: Visible | None = None,
    score_bias: ScoreBias | None = None,
) -> list[Case]:
    """Every case for one attention implementation, chosen by its declared capabilities; when it
    cannot be built, one failing ``setup`` case and the others skipped."""
    s = _Subject(record, options, registry, visible, score_bias)
    cases: list[tuple[str, Callable[[], None]]] = [("no-parameters", partial(_no_parameters_case, s))]
    main_dtypes = [dt for dt in (torch.float32, torch.bfloat16) if dt in s.dtypes()]
    if s.caps.get("padded", True):
        for dtype in main_dtypes:
            for layout in ("none", "right", "left"):
                cases.append((f"padding[{layout},{DTYPE_IDS[dtype]}]", partial(_padding_case, s, layout, dtype)))
        for dtype in s.dtypes():
            cases.append((f"dtype[{DTYPE_IDS[dtype]}]", partial(_dtype_case, s, dtype)))
        cases.append(("mask-reused", partial(_mask_reuse_case, s)))
        if s.has("causal"):
            for dtype in main_dtypes:
                for padded in (False, True):
                    cases.append((f"causal[{'padded' if padded else 'full'},{DTYPE_IDS[dtype]}]",
                                  partial(_causal_case, s, padded, dtype)))
        if s.has("kv_cache"):
            for padded in (False, True):
                cases.append((f"causal-cache-offset[{'padded' if padded else 'full'}]",
                              partial(_cache_offset_case, s, padded)))
        if s.has("cross_attention"):
            for dtype in main_dtypes:
                cases.append((f"cross-attention[{DTYPE_IDS[dtype]}]", partial(_cross_case, s, dtype)))
        if s.has("returns_weights"):
            cases.append(("returns-weights", partial(_weights_case, s)))
        if s.has("head_mask"):
            cases.append(("head-mask", partial(_head_mask_case, s)))
        if s.has("dropout"):
            cases.append(("dropout", partial(_dropout_case, s)))
        for capability in ("returns_weights", "head_mask", "cross_attention", "kv_cache"):
            if not s.has(capability):
                cases.append((f"refuses-call[{capability}]", partial(_refuses_call_case, s, capability)))
    if s.has("varlen"):
        for dtype in main_dtypes:
            for causal in ([False, True] if s.has("causal") else [False]):
                cases.append((f"packed[{'causal' if causal else 'bidirectional'},{DTYPE_IDS[dtype]}]",
                              partial(_packed_case, s, causal, dtype)))
    else:
        cases.append(("refuses-packed", partial(_refuses_packed_case, s)))
    layouts = [layout for layout, ok in (("padded", s.caps.get("padded", True)), ("packed", s.has("varlen"))) if ok]
    for what, bias, window in (("position-bias", True, None), ("window", False, 2), ("position-bias+window", True, 2)):
        if (bias and not s.has("position_bias")) or (window is not None and not s.has("window")):
            continue
        for layout in layouts:
            for dtype in main_dtypes:
                cases.append((f"{what}[{layout},{DTYPE_IDS[dtype]}]",
                              partial(_positions_case, s, bias, window, layout == "packed", dtype)))
    for capability in REFUSALS:
        verb = "accepts" if s.has(capability) else "refuses"
        cases.append((f"choose-{verb}[{capability}]", partial(_choose_case, s, capability)))
    cases.append(("choose-refuses-undeclared-devices-dtypes", partial(_devices_dtypes_case, s)))
    out = [Case("attention", s.name, name, body) for name, body in cases]
    if "cuda" in s.caps.get("devices", ()):
        skip = None if torch.cuda.is_available() else "needs a CUDA GPU (none visible to torch)"
        for dtype in [dt for dt in (torch.float32, torch.bfloat16, torch.float16) if dt in s.dtypes()]:
            for causal in ([False, True] if s.has("causal") else [False]):
                name = f"cuda[{'causal' if causal else 'bidirectional'},{DTYPE_IDS[dtype]}]"
                out.append(Case("attention", s.name, name, partial(_cuda_case, s, dtype, causal), skip=skip))
    return guarded("attention", s.name, s.build, hinted(out, HINTS), HINTS["setup"])


__all__ = [
    "HINTS", "REFUSALS", "CaseFailed", "ScoreBias", "Visible", "attention_cases", "attention_reference", "pack",
    "random_padding", "random_qkv", "relative_bias",
]
