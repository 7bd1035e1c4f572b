"""Conformance of every registered attention implementation against the eager definition.

The oracle is the eager definition written out in float64 below (softmax(q·kᵀ·scale + mask),
× head_mask, ·v; rows with no visible key give zeros), so ``bertzoo:eager`` is checked by the
same tests as the fast ones. Every capability an implementation declares is exercised; every
one it does not declare must be refused, both by :func:`bertzoo.selection.choose` and by the
call itself, with an :class:`IncompatibleComponentError`.

Comparisons are on real query positions only (DESIGN.md: padded positions are unspecified).
Tolerances: fp32 1e-5 absolute; bf16/fp16 2e-2 (inputs rounded to 8/11 mantissa bits, kernels
accumulate in fp32; outputs are averages of O(1) values).
"""

from __future__ import annotations

import pytest
import torch

from bertzoo.discovery import get_registry
from bertzoo.errors import BertzooError, IncompatibleComponentError
from bertzoo.interfaces import AttentionMask
from bertzoo.registry import ComponentRecord
from bertzoo.selection import Request, choose
from bertzoo.spec import ModelSpec

REGISTRY = get_registry()
NAMES = REGISTRY.list_components("attention")
TOL = {torch.float32: 1e-5, torch.float64: 1e-10, torch.bfloat16: 2e-2, torch.float16: 2e-2}
B, H, S, D = 4, 3, 9, 8


def _record(name: str) -> ComponentRecord:
    return REGISTRY.get("attention", name)


def _caps(name: str) -> dict:
    return _record(name).capabilities


def _build(name: str):
    return _record(name).build(ModelSpec(hidden_size=H * D, num_attention_heads=H))


def _qkv(s_k: int = S, dtype: torch.dtype = torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, S, D, generator=g).to(dtype)
    k = torch.randn(B, H, s_k, D, generator=g).to(dtype)
    v = torch.randn(B, H, s_k, D, generator=g).to(dtype)
    return q, k, v


def _padding(n: int, *, left: bool = False, seed: int = 0) -> torch.Tensor:
    """(B, n) bool, True = real; row 0 full, row 1 fully padded, the rest random lengths."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, n + 1, (B,), generator=g)
    lengths[0], lengths[1] = n, 0
    pos = torch.arange(n)[None, :]
    return pos >= (n - lengths)[:, None] if left else pos < lengths[:, None]


def reference(q, k, v, mask: AttentionMask, scale: float, head_mask=None):
    """The eager definition in float64 → (context, probs); empty rows give zeros."""
    q, k, v = q.double(), k.double(), v.double()
    s_q, s_k = q.shape[-2], k.shape[-2]
    scores = q @ k.transpose(-1, -2) * scale
    allowed = torch.ones(1, 1, s_q, s_k, dtype=torch.bool)
    if mask.key_padding is not None:
        allowed = allowed & mask.key_padding[:, None, None, :]
    if mask.causal:
        allowed = allowed & (torch.arange(s_k)[None, :] <= torch.arange(s_q)[:, None] + mask.query_offset)
    if mask.explicit is not None:
        scores = scores + mask.explicit.double()
    probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0)
    if head_mask is not None:
        probs = probs * head_mask.double().view(1, -1, 1, 1)
    return probs @ v, probs


def _real_rows(mask: AttentionMask) -> torch.Tensor:
    """(B, 1, S, 1) bool: query positions to compare (real tokens of self-attention)."""
    if mask.key_padding is None or mask.key_padding.shape[-1] != S:
        return torch.ones(B, 1, S, 1, dtype=torch.bool)
    return mask.key_padding[:, None, :, None]


def _check(out, ref, rows, dtype):
    out, ref = out.double(), ref
    rows = rows.expand_as(ref)
    torch.testing.assert_close(out[rows], ref[rows], atol=TOL[dtype], rtol=0)


def _run(name, q, k, v, mask, **kw):
    args = {"dropout_p": 0.0, "scale": D**-0.5, "need_weights": False, "head_mask": None} | kw
    return _build(name)(q, k, v, mask=mask, **args)


def _requires(name: str, capability: str) -> None:
    if not _caps(name).get(capability, False):
        pytest.skip(f"{name} does not declare {capability} (its refusal is tested by the *_refuses_unclaimed tests)")


def _dtypes(name: str) -> list[torch.dtype]:
    return [getattr(torch, d) for d in _caps(name).get("dtypes", ())]


# -- padded self-attention --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("layout", ["none", "right", "left"])
def test_padding(name, dtype, layout):
    if str(dtype).replace("torch.", "") not in _caps(name)["dtypes"]:
        pytest.skip(f"{name} does not declare {dtype}")
    q, k, v = _qkv(dtype=dtype)
    padding = None if layout == "none" else _padding(S, left=layout == "left")
    mask = AttentionMask(key_padding=padding)
    ref, _ = reference(q, k, v, mask, D**-0.5)
    out, weights = _run(name, q, k, v, mask)
    assert out.shape == (B, H, S, D) and out.dtype == dtype and weights is None
    _check(out, ref, _real_rows(mask), dtype)
    if padding is not None:  # the fully padded sequence sees no key: exact zeros, no NaN
        assert torch.equal(out[1], torch.zeros_like(out[1]))


@pytest.mark.parametrize("name", NAMES)
def test_every_declared_dtype_runs(name):
    for dtype in _dtypes(name):
        q, k, v = _qkv(dtype=dtype)
        mask = AttentionMask(key_padding=_padding(S))
        out, _ = _run(name, q, k, v, mask)
        ref, _ = reference(q, k, v, mask, D**-0.5)
        _check(out, ref, _real_rows(mask), dtype)


@pytest.mark.parametrize("name", NAMES)
def test_mask_conversion_is_reused_across_calls(name):
    """One AttentionMask per forward serves every layer: a second call gives the same result."""
    q, k, v = _qkv()
    mask = AttentionMask(key_padding=_padding(S))
    first, _ = _run(name, q, k, v, mask)
    second, _ = _run(name, q, k, v, mask)
    torch.testing.assert_close(first, second, atol=0, rtol=0)


# -- causal, cache offset, cross-attention --------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_causal(name, dtype, padded):
    _requires(name, "causal")
    q, k, v = _qkv(dtype=dtype)
    mask = AttentionMask(key_padding=_padding(S) if padded else None, causal=True)
    ref, _ = reference(q, k, v, mask, D**-0.5)
    out, _ = _run(name, q, k, v, mask)
    _check(out, ref, _real_rows(mask), dtype)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_causal_with_cache_offset(name, padded):
    """Query i sees keys <= i + offset (the keys include `offset` cached positions)."""
    _requires(name, "kv_cache")
    offset = 5
    q, k, v = _qkv(s_k=S + offset)
    padding = _padding(S + offset, left=True) if padded else None  # decoders pad on the left
    mask = AttentionMask(key_padding=padding, causal=True, query_offset=offset)
    ref, _ = reference(q, k, v, mask, D**-0.5)
    out, _ = _run(name, q, k, v, mask)
    rows = torch.ones(B, 1, S, 1, dtype=torch.bool) if padding is None else padding[:, None, offset:, None]
    _check(out, ref, rows, torch.float32)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_cross_attention(name, dtype):
    _requires(name, "cross_attention")
    s_enc = 13
    q, k, v = _qkv(s_k=s_enc, dtype=dtype)
    mask = AttentionMask(key_padding=_padding(s_enc))
    ref, _ = reference(q, k, v, mask, D**-0.5)
    out, _ = _run(name, q, k, v, mask)
    assert out.shape == (B, H, S, D)
    _check(out, ref, torch.ones(B, 1, S, 1, dtype=torch.bool), dtype)
    assert torch.equal(out[1], torch.zeros_like(out[1]))  # no encoder token at all → zeros


# -- weights, head mask, dropout ------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_returns_weights(name):
    _requires(name, "returns_weights")
    q, k, v = _qkv()
    mask = AttentionMask(key_padding=_padding(S))
    ref, probs = reference(q, k, v, mask, D**-0.5)
    out, weights = _run(name, q, k, v, mask, need_weights=True)
    assert weights is not None and weights.shape == (B, H, S, S)
    rows = _real_rows(mask)
    _check(weights, probs, rows, torch.float32)
    _check(out, ref, rows, torch.float32)


@pytest.mark.parametrize("name", NAMES)
def test_head_mask(name):
    _requires(name, "head_mask")
    q, k, v = _qkv()
    mask = AttentionMask(key_padding=_padding(S))
    head_mask = torch.tensor([1.0, 0.0, 0.5]).view(1, H, 1, 1)
    ref, _ = reference(q, k, v, mask, D**-0.5, head_mask=head_mask)
    out, _ = _run(name, q, k, v, mask, head_mask=head_mask)
    _check(out, ref, _real_rows(mask), torch.float32)


@pytest.mark.parametrize("name", NAMES)
def test_dropout(name):
    """Dropout changes the result, is seeded by torch's generator, and keeps the expectation."""
    _requires(name, "dropout")
    q, k, v = _qkv()
    mask = AttentionMask(key_padding=_padding(S))
    ref, _ = reference(q, k, v, mask, D**-0.5)
    torch.manual_seed(1)
    first, _ = _run(name, q, k, v, mask, dropout_p=0.5)
    torch.manual_seed(1)
    again, _ = _run(name, q, k, v, mask, dropout_p=0.5)
    rows = _real_rows(mask).expand_as(ref)
    assert torch.isfinite(first).all()
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    assert (first.double()[rows] - ref[rows]).abs().max() > 1e-3
    # inverted dropout keeps the mean: average many draws of a wide-enough key set
    draws = torch.stack([_run(name, q, k, v, mask, dropout_p=0.5)[0] for _ in range(200)]).double().mean(0)
    assert (draws[rows] - ref[rows]).abs().mean() < 0.1


# -- packed (variable-length) input ---------------------------------------------------------------------


def _pack(t: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """(B, h, S, d) padded → (T, h, d) real tokens in batch order."""
    return t.transpose(1, 2)[padding]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_packed_matches_padded_reference(name, dtype, causal):
    _requires(name, "varlen")
    if causal:
        _requires(name, "causal")
    q, k, v = _qkv(dtype=dtype)
    padding = _padding(S)  # includes a fully padded (empty) sequence
    lengths = padding.sum(-1, dtype=torch.int32)
    cu = torch.nn.functional.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    packed = AttentionMask(causal=causal, cu_seqlens=cu, max_seqlen=int(lengths.max()))
    out, _ = _run(name, _pack(q, padding), _pack(k, padding), _pack(v, padding), packed)
    ref, _ = reference(q, k, v, AttentionMask(key_padding=padding, causal=causal), D**-0.5)
    assert out.shape == (int(lengths.sum()), H, D) and out.dtype == dtype
    torch.testing.assert_close(out.double(), _pack(ref, padding), atol=TOL[dtype], rtol=0)


# -- honesty: unclaimed capabilities are refused -----------------------------------------------------------

REFUSALS = {
    "causal": Request(causal=True),
    "cross_attention": Request(cross_attention=True),
    "kv_cache": Request(kv_cache=True),
    "returns_weights": Request(returns_weights=True),
    "head_mask": Request(head_mask=True),
    "dropout": Request(dropout=True),
    "varlen": Request(varlen=True),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("capability", list(REFUSALS))
def test_choose_refuses_unclaimed(name, capability):
    if _caps(name).get(capability, False):
        assert choose(REGISTRY, REFUSALS[capability], name).record.full_name == name
        return
    with pytest.raises(IncompatibleComponentError) as info:
        choose(REGISTRY, REFUSALS[capability], name)
    message = str(info.value)
    assert name in message and capability.replace("_", "-") in message and "auto" in message


@pytest.mark.parametrize("name", NAMES)
def test_choose_refuses_undeclared_device_and_dtype(name):
    caps = _caps(name)
    for device in ("cpu", "cuda", "mps", "xla"):
        if device not in caps["devices"]:
            with pytest.raises(IncompatibleComponentError, match=f"device {device}"):
                choose(REGISTRY, Request(device=device), name)
    for dtype in ("float32", "bfloat16", "float16", "float64"):
        if dtype not in caps["dtypes"]:
            with pytest.raises(IncompatibleComponentError, match=f"dtype {dtype}"):
                choose(REGISTRY, Request(dtype=dtype), name)


@pytest.mark.parametrize("name", NAMES)
def test_call_refuses_unclaimed(name):
    """Asked directly (not through choose), an implementation refuses what it did not declare."""
    caps = _caps(name)
    q, k, v = _qkv()
    mask = AttentionMask(key_padding=_padding(S))
    if not caps.get("returns_weights"):
        with pytest.raises(IncompatibleComponentError, match="weights"):
            _run(name, q, k, v, mask, need_weights=True)
    if not caps.get("head_mask"):
        with pytest.raises(IncompatibleComponentError, match="head_mask"):
            _run(name, q, k, v, mask, head_mask=torch.ones(1, H, 1, 1))
    if not caps.get("cross_attention"):
        qc, kc, vc = _qkv(s_k=13)
        with pytest.raises(IncompatibleComponentError, match="cross-attention"):
            _run(name, qc, kc, vc, AttentionMask(key_padding=_padding(13)))
    if not caps.get("kv_cache"):
        qc, kc, vc = _qkv(s_k=S + 5)
        with pytest.raises(IncompatibleComponentError, match="cache"):
            _run(name, qc, kc, vc, AttentionMask(causal=True, query_offset=5))


@pytest.mark.parametrize("name", NAMES)
def test_call_refuses_packed_input_unless_varlen(name):
    _requires_not = _caps(name).get("varlen", False)
    if _requires_not:
        pytest.skip(f"{name} declares varlen (tested in test_packed_matches_padded_reference)")
    t = torch.randn(10, H, D)
    packed = AttentionMask(cu_seqlens=torch.tensor([0, 4, 10], dtype=torch.int32), max_seqlen=6)
    with pytest.raises(BertzooError, match="packed"):
        _run(name, t, t, t, packed)


def test_auto_prefers_fast_and_falls_back_for_weights():
    assert choose(REGISTRY, Request()).record.full_name == "bertzoo:sdpa"
    assert choose(REGISTRY, Request(varlen=True)).record.full_name == "bertzoo:flash"
    assert choose(REGISTRY, Request(kv_cache=True, causal=True)).record.full_name == "bertzoo:sdpa"
    assert choose(REGISTRY, Request(returns_weights=True)).record.full_name == "bertzoo:eager"
    assert choose(REGISTRY, Request(head_mask=True)).record.full_name == "bertzoo:eager"
    explained = choose(REGISTRY, Request(returns_weights=True)).explain()
    assert "bertzoo:sdpa: passed over: lacks returns-weights" in explained


# -- CUDA ---------------------------------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible to torch)")


@cuda
@pytest.mark.parametrize("name", [n for n in NAMES if "cuda" in _caps(n).get("devices", ())])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_cuda_matches_reference(name, dtype, causal):
    if str(dtype).replace("torch.", "") not in _caps(name)["dtypes"]:
        pytest.skip(f"{name} does not declare {dtype}")
    if causal:
        _requires(name, "causal")
    q, k, v = _qkv(dtype=dtype)
    padding = _padding(S)
    mask = AttentionMask(key_padding=padding.cuda(), causal=causal)
    out, _ = _run(name, q.cuda(), k.cuda(), v.cuda(), mask)
    ref, _ = reference(q, k, v, AttentionMask(key_padding=padding, causal=causal), D**-0.5)
    _check(out.cpu(), ref, _real_rows(AttentionMask(key_padding=padding)), dtype)
    if _caps(name).get("varlen"):
        lengths = padding.sum(-1, dtype=torch.int32)
        cu = torch.nn.functional.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0)).cuda()
        packed = AttentionMask(causal=causal, cu_seqlens=cu, max_seqlen=int(lengths.max()))
        out, _ = _run(name, *(_pack(t, padding).cuda() for t in (q, k, v)), packed)
        torch.testing.assert_close(out.cpu().double(), _pack(ref, padding), atol=TOL[dtype], rtol=0)
