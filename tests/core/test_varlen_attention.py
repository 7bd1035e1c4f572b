"""The CPU varlen attention's opt-in route (``bertzoo.plugins.flash.CPU_BUCKETS``): length buckets (bertzoo.model.packing.bucket_plan, bertzoo.plugins.flash.varlen_bucketed)
against a dense per-sequence reference written out here, and against the per-sequence loop.

Covers the bucket widths, batch invariance (bit for bit), a single sequence, sequences of length 1 and 0, mixed lengths, a
position bias, a local window, causal masks, bf16 and gradients; and that the packed attention
op runs the buckets on CPU (one plan per forward, kept in the mask's cache).
"""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from bertzoo.interfaces import AttentionMask
from bertzoo.model.packing import OFFSETS, bucket_groups, bucket_plan, bucket_width
from bertzoo.plugins.flash import BUCKETS, FlashAttention, varlen_bucketed, varlen_loop

H, D = 3, 8
MAX_BIAS = 70


@pytest.fixture(autouse=True)
def one_thread() -> object:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def offsets_of(lengths: list[int]) -> list[int]:
    out = [0]
    for n in lengths:
        out.append(out[-1] + n)
    return out


def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: list[int], *, causal: bool = False,
              bias: torch.Tensor | None = None, window: int | None = None) -> torch.Tensor:
    """Dense softmax attention per sequence, in fp64: the definition the kernels must meet."""
    outs = []
    for a, b in pairwise(offsets):
        n = b - a
        qs, ks, vs = (t[a:b].double().transpose(0, 1) for t in (q, k, v))  # (h, n, d)
        scores = qs @ ks.transpose(-1, -2) * D**-0.5
        if bias is not None:
            scores = scores + bias[0, :, :n, :n].double()
        i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
        allowed = torch.ones(n, n, dtype=torch.bool)
        if causal:
            allowed &= j <= i
        if window is not None:
            allowed &= (i - j).abs() <= window
        scores = scores.masked_fill(~allowed, float("-inf"))
        outs.append((scores.softmax(-1) @ vs).transpose(0, 1))
    return torch.cat(outs) if outs else q.new_zeros(0, H, D).double()


def packed(lengths: list[int], dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(sum(lengths), H, D, generator=g).to(dtype) for _ in range(3))


LENGTHS = {
    "mixed": [5, 1, 9, 0, 33, 30, 2, 64, 17],
    "single": [23],
    "ones": [1, 1, 1, 1],
    "equal": [7, 7, 7],
    "far apart": [40, 3],
}


def test_bucket_widths_and_groups() -> None:
    assert [bucket_width(n) for n in (1, 8, 9, 63, 64, 65, 127, 128, 129, 255, 256, 257, 512)] == [
        8, 8, 16, 64, 64, 72, 128, 128, 144, 256, 256, 288, 512]
    for n in range(64, 2000):  # padding stays under 1/8 of the sequence above 64 tokens
        assert n <= bucket_width(n) < n * 9 / 8 + 1
    # (width, members in packed order), widest first; length 0 left out
    assert bucket_groups([5, 1, 9, 0, 33, 30, 2, 64]) == [(64, [7]), (40, [4]), (32, [5]), (16, [2]), (8, [0, 1, 6])]
    assert bucket_groups([]) == [] and bucket_groups([0, 0]) == []


def test_bucket_plan_restores_packed_order() -> None:
    lengths = [5, 1, 9, 0, 33, 30, 2, 64]
    plan = bucket_plan(offsets_of(lengths), torch.device("cpu"))
    assert [b.width for b in plan.buckets] == [64, 40, 32, 16, 8]
    assert plan.order is not None and sorted(plan.order.tolist()) == list(range(sum(lengths)))
    assert plan.buckets[0].real is None and plan.buckets[1].real is not None
    assert plan.buckets[0].start == 80 and plan.buckets[1].start is None  # a full-width sequence is a view
    sorted_plan = bucket_plan(offsets_of([15, 14, 9, 8, 8]), torch.device("cpu"))
    assert [b.width for b in sorted_plan.buckets] == [16, 8] and sorted_plan.order is None  # longest first
    equal = bucket_plan(offsets_of([3, 16, 16, 16]), torch.device("cpu"))
    assert [(b.width, b.start) for b in equal.buckets] == [(16, 3), (8, None)]  # consecutive full rows: a view


def test_a_sequence_gives_the_same_bits_alone_and_in_any_batch() -> None:
    """Its width depends on its length only and every bucket is masked: batch invariance, bit for bit."""
    lengths = [21, 5, 24, 17, 64, 1]
    q, k, v = packed(lengths, seed=4)
    offsets = offsets_of(lengths)
    together = varlen_bucketed(q, k, v, bucket_plan(offsets, q.device), causal=False, dropout_p=0.0, scale=None,
                               window=6)
    for i, (a, b) in enumerate(pairwise(offsets)):
        alone = varlen_bucketed(q[a:b], k[a:b], v[a:b], bucket_plan([0, b - a], q.device), causal=False,
                                dropout_p=0.0, scale=None, window=6)
        assert torch.equal(alone, together[a:b]), f"sequence {i} ({b - a} tokens)"


@pytest.mark.parametrize("name", list(LENGTHS))
@pytest.mark.parametrize(("causal", "with_bias", "window"), [
    (False, False, None), (False, True, None), (False, False, 2), (False, True, 3), (True, False, None),
])
def test_buckets_equal_the_reference(name: str, causal: bool, with_bias: bool, window: int | None) -> None:
    lengths = LENGTHS[name]
    offsets = offsets_of(lengths)
    q, k, v = packed(lengths)
    # as the trunk makes it: as large as the longest sequence (narrower than its padded width)
    bias = (torch.randn(1, H, max(lengths), max(lengths), generator=torch.Generator().manual_seed(5))
            if with_bias else None)
    want = reference(q, k, v, offsets, causal=causal, bias=bias, window=window)
    got = varlen_bucketed(q, k, v, bucket_plan(offsets, q.device), causal=causal, dropout_p=0.0, scale=None,
                          bias=bias, window=window)
    loop = varlen_loop(q, k, v, offsets, causal=causal, dropout_p=0.0, scale=None, bias=bias, window=window)
    assert got.shape == (sum(lengths), H, D) and got.dtype == q.dtype
    assert (got.double() - want).abs().max().item() <= 1e-5
    assert (got - loop).abs().max().item() <= 1e-5


def test_bf16_buckets_equal_the_loop() -> None:
    lengths = LENGTHS["mixed"]
    offsets = offsets_of(lengths)
    q, k, v = packed(lengths, torch.bfloat16)
    got = varlen_bucketed(q, k, v, bucket_plan(offsets, q.device), causal=False, dropout_p=0.0, scale=None, window=4)
    loop = varlen_loop(q, k, v, offsets, causal=False, dropout_p=0.0, scale=None, window=4)
    want = reference(q, k, v, offsets, window=4)
    assert got.dtype == torch.bfloat16
    # both kernels accumulate in fp32 and round once: the same few bf16 ulps (2^-8 relative) off the fp64 truth
    assert (got.double() - want).abs().max().item() <= 2e-2
    assert (got.float() - loop.float()).abs().max().item() <= 1e-2


def test_gradients_equal_the_loop() -> None:
    lengths = [5, 1, 14, 13, 2]
    offsets = offsets_of(lengths)
    bias = torch.randn(1, H, MAX_BIAS, MAX_BIAS, generator=torch.Generator().manual_seed(7), requires_grad=True)
    grads = []
    for run in ("buckets", "loop"):
        q, k, v = (t.requires_grad_() for t in packed(lengths, seed=3))
        bias.grad = None
        args = dict(causal=False, dropout_p=0.0, scale=None, bias=bias, window=3)
        out = (varlen_bucketed(q, k, v, bucket_plan(offsets, q.device), **args) if run == "buckets"
               else varlen_loop(q, k, v, offsets, **args))
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append([q.grad, k.grad, v.grad, bias.grad])
    for a, b in zip(*grads, strict=True):
        assert torch.isfinite(a).all() and (a - b).abs().max().item() <= 1e-5


def test_the_packed_op_runs_buckets_on_cpu_once_per_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    from bertzoo.plugins import flash

    monkeypatch.setattr(flash, "CPU_BUCKETS", True)  # opt-in (the loop is the default on CPU)
    lengths = [10, 1, 40, 38]  # widths 16, 8, 40, 40
    offsets = offsets_of(lengths)
    q, k, v = packed(lengths)
    mask = AttentionMask(cu_seqlens=torch.tensor(offsets, dtype=torch.int32), max_seqlen=max(lengths))
    op = FlashAttention()
    out, weights = op(q, k, v, mask=mask)
    plan = mask.cache[BUCKETS]
    assert weights is None and mask.cache[OFFSETS] == offsets
    assert [b.width for b in plan.buckets] == [40, 16, 8]
    op(q, k, v, mask=mask)
    assert mask.cache[BUCKETS] is plan  # the layers of a forward share it
    assert (out.double() - reference(q, k, v, offsets)).abs().max().item() <= 1e-5


def test_padded_input_through_the_op_equals_the_reference() -> None:
    """Padded (B, h, S, d) input: gathered, bucketed, scattered back; zeros at padding."""
    lengths = [9, 1, 4]
    q, k, v = packed(lengths)
    S = max(lengths)
    real = torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]  # (B, S)

    def pad(t: torch.Tensor) -> torch.Tensor:
        out = t.new_zeros(len(lengths), S, H, D)
        out[real] = t
        return out.transpose(1, 2)  # (B, h, S, d)

    out, _ = FlashAttention()(pad(q), pad(k), pad(v), mask=AttentionMask(key_padding=real))
    out = out.transpose(1, 2)  # (B, S, h, d)
    assert (out[real].double() - reference(q, k, v, offsets_of(lengths))).abs().max().item() <= 1e-5
    assert not out[~real].any()
