"""Variable-length attention on CPU: which way of running packed q/k/v is fastest?

The workload of issue 6: 256 sequences, lengths uniform in [8, 128] (fixed seed), batches of
32 in arrival order. Attention only: q/k/v are packed ``(T, h, d)`` with ``cu_seqlens``, and
each candidate returns packed ``(T, h, d)``. Shapes: MiniLM (h=12, d=32), BERT-base (h=12,
d=64); fp32 and bf16. Candidates:

  loop-sdpa      one F.scaled_dot_product_attention call per sequence (views, no copies)
  loop-aten      the same through aten::_scaled_dot_product_flash_attention_for_cpu directly
  buckets-k      sequences sorted by length, cut into k buckets, padded within the bucket,
                 one SDPA call per bucket with a key-padding mask
  padded         the whole batch padded to its longest, one SDPA call with a mask (what
                 transformers does; shown for reference)
  nested         jagged nested tensor SDPA
  block-diag     one SDPA over the whole pack with a block-diagonal boolean mask
  varlen-op      torch.nn.attention.varlen.varlen_attn / aten::_flash_attention_forward

Run: ``python benchmarks/attention_micro.py [--reps 5] [--quick]``. Prints one table per dtype:
milliseconds per pass over the 8 batches (best of reps) and speed relative to loop-sdpa.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from itertools import pairwise

import torch
import torch.nn.functional as F

Packed = tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int], int]


def workload(seed: int = 0, n: int = 256, batch: int = 32) -> list[list[int]]:
    """Lengths of each batch, in arrival order."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(8, 129, (n,), generator=g).tolist()
    return [lengths[i : i + batch] for i in range(0, n, batch)]


def make_batch(lengths: list[int], h: int, d: int, dtype: torch.dtype, seed: int) -> Packed:
    g = torch.Generator().manual_seed(seed)
    total = sum(lengths)
    q, k, v = (torch.randn(total, h, d, generator=g).to(dtype) for _ in range(3))
    cu = [0]
    for n in lengths:
        cu.append(cu[-1] + n)
    return q, k, v, cu, max(lengths)


# -- candidates ---------------------------------------------------------------------------
def loop_sdpa(q, k, v, cu, max_len, scale):
    outs = []
    for s, e in pairwise(cu):
        # (L, h, d) -> (1, h, L, d) as a view; the CPU flash kernel takes strided input
        o = F.scaled_dot_product_attention(
            q[s:e].transpose(0, 1)[None], k[s:e].transpose(0, 1)[None], v[s:e].transpose(0, 1)[None], scale=scale
        )
        outs.append(o[0].transpose(0, 1))
    return torch.cat(outs)


_flash_cpu = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default


def loop_aten(q, k, v, cu, max_len, scale):
    outs = []
    for s, e in pairwise(cu):
        o = _flash_cpu(
            q[s:e].transpose(0, 1)[None], k[s:e].transpose(0, 1)[None], v[s:e].transpose(0, 1)[None], scale=scale
        )[0]
        outs.append(o[0].transpose(0, 1))
    return torch.cat(outs)


def _bucket_plan(cu: list[int], n_buckets: int):
    """Per bucket: gather index (b, L) into the packed tokens (T = pad row) and key mask."""
    lengths = [e - s for s, e in pairwise(cu)]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    total = cu[-1]
    per = -(-len(order) // n_buckets)
    plan = []
    for j in range(0, len(order), per):
        members = order[j : j + per]
        width = max(lengths[i] for i in members)
        idx = torch.full((len(members), width), total, dtype=torch.long)
        for r, i in enumerate(members):
            idx[r, : lengths[i]] = torch.arange(cu[i], cu[i + 1])
        keep = idx < total
        plan.append((idx, keep[:, None, None, :], idx[keep]))
    return plan


def make_buckets(n_buckets: int) -> Callable:
    def buckets(q, k, v, cu, max_len, scale, _cache={}):  # noqa: B006 - plan cached per cu, once per forward in real use
        key = (tuple(cu), n_buckets)
        if key not in _cache:
            _cache.clear()
            _cache[key] = _bucket_plan(cu, n_buckets)
        out = torch.empty_like(q)
        zero = q.new_zeros(1, *q.shape[1:])
        qz, kz, vz = (torch.cat([t, zero]) for t in (q, k, v))
        for idx, mask, dest in _cache[key]:
            qb, kb, vb = (t[idx].transpose(1, 2) for t in (qz, kz, vz))  # (b, h, L, d)
            o = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, scale=scale).transpose(1, 2)
            out[dest] = o[mask[:, 0, 0]]
        return out

    return buckets


def padded(q, k, v, cu, max_len, scale):
    return make_buckets(1)(q, k, v, cu, max_len, scale)


def nested(q, k, v, cu, max_len, scale):
    offsets = torch.tensor(cu, dtype=torch.long)
    qn, kn, vn = (
        torch.nested.nested_tensor_from_jagged(t, offsets, max_seqlen=max_len).transpose(1, 2) for t in (q, k, v)
    )
    o = F.scaled_dot_product_attention(qn, kn, vn, scale=scale)
    return o.transpose(1, 2).values()


def block_diag(q, k, v, cu, max_len, scale):
    seg = torch.repeat_interleave(torch.arange(len(cu) - 1), torch.tensor([e - s for s, e in pairwise(cu)]))
    mask = seg[:, None] == seg[None, :]
    o = F.scaled_dot_product_attention(
        q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None], attn_mask=mask, scale=scale
    )
    return o[0].transpose(0, 1)


def varlen_op(q, k, v, cu, max_len, scale):
    from torch.nn.attention.varlen import varlen_attn

    c = torch.tensor(cu, dtype=torch.int32)
    return varlen_attn(q, k, v, c, c, max_len, max_len, scale=scale)


CANDIDATES: dict[str, Callable] = {
    "loop-sdpa": loop_sdpa,
    "loop-aten": loop_aten,
    "buckets-2": make_buckets(2),
    "buckets-4": make_buckets(4),
    "buckets-8": make_buckets(8),
    "padded": padded,
    "nested": nested,
    "block-diag": block_diag,
    "varlen-op": varlen_op,
}


def bench(fns: dict[str, Callable], batches: list[Packed], scale: float, reps: int) -> dict[str, float]:
    """Best-of-``reps`` ms per pass, candidates alternated each round so load spikes hit all alike."""
    best = dict.fromkeys(fns, float("inf"))
    for rnd in range(reps):
        for name, fn in fns.items():
            if name == "block-diag" and rnd:  # an order of magnitude slower: one round is enough
                continue
            t0 = time.perf_counter()
            for b in batches:
                fn(*b, scale)
            best[name] = min(best[name], (time.perf_counter() - t0) * 1e3)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 batches instead of 8")
    parser.add_argument("--only", nargs="*", default=None, help="candidate names to run")
    args = parser.parse_args()
    torch.manual_seed(0)
    plan = workload()[: 2 if args.quick else None]
    names = args.only or list(CANDIDATES)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {len(plan)} batches of 32, "
          f"{sum(map(sum, plan))} real tokens; ms per pass, best of {args.reps}")
    for dtype in (torch.float32, torch.bfloat16):
        results: dict[str, dict[str, str]] = {}
        for label, h, d in (("MiniLM h12 d32", 12, 32), ("BERT-base h12 d64", 12, 64)):
            batches = [make_batch(lengths, h, d, dtype, seed=i) for i, lengths in enumerate(plan)]
            scale = d**-0.5
            ref = [loop_sdpa(*b, scale).float() for b in batches]
            runnable: dict[str, Callable] = {}
            errors: dict[str, float] = {}
            for name in names:
                try:  # correctness against the loop, and the warm-up
                    errors[name] = max(
                        (CANDIDATES[name](*b, scale).float() - r).abs().max().item()
                        for b, r in zip(batches, ref, strict=True)
                    )
                    runnable[name] = CANDIDATES[name]
                except Exception as exc:  # e.g. no CPU kernel for the varlen op
                    results.setdefault(name, {})[label] = f"n/a ({type(exc).__name__})"
            times = bench(runnable, batches, scale, args.reps)
            base = times.get("loop-sdpa")
            for name, ms in times.items():
                rel = f" x{base / ms:.2f}" if base else ""
                results.setdefault(name, {})[label] = f"{ms:8.1f} ms{rel} err {errors[name]:.0e}"
        print(f"\n{str(dtype).replace('torch.', '')}")
        print(f"{'candidate':<12} | {'MiniLM h12 d32':<30} | {'BERT-base h12 d64':<30}")
        for name, row in results.items():
            print(f"{name:<12} | {row.get('MiniLM h12 d32', ''):<30} | {row.get('BERT-base h12 d64', ''):<30}")


if __name__ == "__main__":
    main()
