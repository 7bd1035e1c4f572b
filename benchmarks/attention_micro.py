"""Variable-length attention on CPU: which way of running packed q/k/v is fastest?

Workloads (``--workload``): ``arrival`` (issue 6): 256 sequences, lengths uniform in [8, 128]
(fixed seed), batches of 32 in arrival order; ``sorted`` (the main job, core/inference/batching.py):
1024 sequences, lengths uniform in [8, 256], sorted longest first, batches of at most 4096 tokens.
Attention only: q/k/v are packed ``(T, h, d)`` with ``cu_seqlens``, and each candidate returns
packed ``(T, h, d)``. Shapes: MiniLM (h=12, d=32), BERT-base (h=12, d=64); fp32 and bf16.
Candidates:

  bz-loop        bertzoo.plugins.flash.varlen_loop: one SDPA call per sequence (the old CPU path)
  bz-buckets     bertzoo.plugins.flash.varlen_bucketed: length buckets chosen by
                 bertzoo.model.packing.bucket_groups, one SDPA call per bucket (the CPU path;
                 its plan is rebuilt on every call here, once per forward in the model)
  loop-sdpa      one F.scaled_dot_product_attention call per sequence (views, no copies)
  loop-aten      the same through aten::_scaled_dot_product_flash_attention_for_cpu directly
  buckets-k      sequences sorted by length, cut into k buckets, padded within the bucket,
                 one SDPA call per bucket with a key-padding mask
  padded         the whole batch padded to its longest, one SDPA call with a mask (what
                 transformers does; shown for reference)
  nested         jagged nested tensor SDPA
  block-diag     one SDPA over the whole pack with a block-diagonal boolean mask
  varlen-op      torch.nn.attention.varlen.varlen_attn / aten::_flash_attention_forward
  flex           FlexAttention with a document mask, torch.compile'd on CPU (``--flex``: its
                 compile and block-mask times are printed; each new batch shape recompiles)

Run: ``python benchmarks/attention_micro.py [--quick] [--workload sorted] [--load] [--reps 5]``.
``--e2e`` times whole forwards instead: a MiniLM-shaped random BERT (6 layers, hidden 384, 12
heads) on the ``sorted`` batches, packed, with the CPU attention as buckets and as the loop.
``--load`` runs a competing process (one thread of 512² fp32 matmuls) for the whole run, the
case where a per-sequence loop opens one OpenMP region per sequence and stalls. Prints the load
average, then one table per dtype: milliseconds per pass over the batches (best of reps, the
candidates alternated each round), real tokens per second, speed relative to bz-loop, and the
max error against the loop.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F

Packed = tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int], int]


def workload(seed: int = 0, n: int = 256, batch: int = 32) -> list[list[int]]:
    """Lengths of each batch, in arrival order."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(8, 129, (n,), generator=g).tolist()
    return [lengths[i : i + batch] for i in range(0, n, batch)]


def sorted_workload(seed: int = 0, n: int = 1024, budget: int = 4096) -> list[list[int]]:
    """Lengths of each batch as the main job makes them: longest first, at most ``budget`` tokens."""
    g = torch.Generator().manual_seed(seed)
    lengths = sorted(torch.randint(8, 257, (n,), generator=g).tolist(), reverse=True)
    batches: list[list[int]] = [[]]
    for n_tok in lengths:
        if batches[-1] and sum(batches[-1]) + n_tok > budget:
            batches.append([])
        batches[-1].append(n_tok)
    return batches


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


def bz_loop(q, k, v, cu, max_len, scale):
    from bertzoo.plugins.flash import varlen_loop

    return varlen_loop(q, k, v, cu, causal=False, dropout_p=0.0, scale=scale)


def bz_buckets(q, k, v, cu, max_len, scale):
    from bertzoo.model.packing import bucket_plan
    from bertzoo.plugins.flash import varlen_bucketed

    return varlen_bucketed(q, k, v, bucket_plan(cu, q.device), causal=False, dropout_p=0.0, scale=scale)


_FLEX: dict[str, Any] = {}


def flex(q, k, v, cu, max_len, scale):
    """FlexAttention over the whole pack with a document mask (compiled once per shape)."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    if "fn" not in _FLEX:
        _FLEX["fn"] = torch.compile(flex_attention, dynamic=False)
    total = cu[-1]
    doc = torch.repeat_interleave(torch.arange(len(cu) - 1), torch.tensor([e - s for s, e in pairwise(cu)]))

    def same_doc(b, h, qi, ki):
        return doc[qi] == doc[ki]

    t0 = time.perf_counter()
    block = create_block_mask(same_doc, None, None, total, total, device="cpu")
    _FLEX["mask_s"] = max(_FLEX.get("mask_s", 0.0), time.perf_counter() - t0)
    t0 = time.perf_counter()
    o = _FLEX["fn"](q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None], block_mask=block,
                    scale=scale)
    _FLEX["call_s"] = max(_FLEX.get("call_s", 0.0), time.perf_counter() - t0)
    return o[0].transpose(0, 1)


CANDIDATES: dict[str, Callable] = {
    "bz-loop": bz_loop,
    "bz-buckets": bz_buckets,
    "loop-sdpa": loop_sdpa,
    "loop-aten": loop_aten,
    "buckets-2": make_buckets(2),
    "buckets-4": make_buckets(4),
    "buckets-8": make_buckets(8),
    "padded": padded,
    "nested": nested,
    "block-diag": block_diag,
    "varlen-op": varlen_op,
    "flex": flex,
}
QUICK = ["bz-loop", "bz-buckets", "padded", "buckets-4"]


def start_load() -> subprocess.Popen[bytes]:
    """A competing process: one thread of fp32 matmuls until killed."""
    code = "import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\nwhile True:\n    a @ a\n"
    return subprocess.Popen([sys.executable, "-c", code])


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


def run_e2e(plan: list[list[int]], reps: int) -> None:
    """Whole packed forwards of a MiniLM-shaped random BERT, CPU attention as buckets vs the loop."""
    import tempfile

    import transformers

    import bertzoo
    import bertzoo.plugins.flash as flash

    config = transformers.BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                     intermediate_size=1536, max_position_embeddings=512)
    with tempfile.TemporaryDirectory() as folder:
        transformers.BertModel(config).save_pretrained(folder)
        model = bertzoo.from_pretrained(folder).eval()
    g = torch.Generator().manual_seed(0)
    batches = []
    for lengths in plan:
        real = (torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]).long()
        batches.append((torch.randint(1000, 20000, real.shape, generator=g) * real, real))
    routes = {"buckets": (flash._bucket_plan, flash.varlen_bucketed),
              # the loop through the same op: the "plan" is the offsets list
              "loop": (lambda mask, offsets, device: offsets, flash.varlen_loop)}
    best = dict.fromkeys(routes, float("inf"))
    try:
        with torch.inference_mode():
            for rnd in range(reps + 1):  # round 0 warms up
                for name, (make_plan, run) in routes.items():
                    flash._bucket_plan, flash.varlen_bucketed = make_plan, run  # type: ignore[assignment]
                    t0 = time.perf_counter()
                    for ids, real in batches:
                        model(input_ids=ids, attention_mask=real)
                    if rnd:
                        best[name] = min(best[name], time.perf_counter() - t0)
    finally:
        flash._bucket_plan, flash.varlen_bucketed = routes["buckets"]
    tokens = sum(map(sum, plan))
    print("\nwhole forwards (MiniLM-shaped, packed), s per pass")
    for name, sec in best.items():
        print(f"{name:<12} | {sec:7.2f} s {tokens / sec / 1e3:6.2f}k tok/s x{best['loop'] / sec:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true",
                        help=f"fewer batches, fp32 only, candidates {' '.join(QUICK)} (unless --only)")
    parser.add_argument("--workload", choices=("arrival", "sorted"), default="arrival")
    parser.add_argument("--load", action="store_true", help="run a competing matmul process meanwhile")
    parser.add_argument("--flex", action="store_true", help="add the compiled FlexAttention candidate")
    parser.add_argument("--e2e", action="store_true", help="time whole model forwards (sorted workload)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--only", nargs="*", default=None, help="candidate names to run")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    plan = workload() if args.workload == "arrival" and not args.e2e else sorted_workload()
    if args.quick:
        plan = plan[:2] if args.workload == "arrival" else plan[:: max(1, len(plan) // 4)]
    names = args.only or (QUICK if args.quick else [n for n in CANDIDATES if n != "flex"])
    if args.flex and "flex" not in names:
        names = [*names, "flex"]
    load = start_load() if args.load else None
    try:
        time.sleep(1.0 if load else 0.0)
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, workload {'sorted' if args.e2e else args.workload}: "
              f"{len(plan)} batches, {sum(map(len, plan))} sequences, {sum(map(sum, plan))} real tokens; "
              f"{'with' if load else 'without'} a competing process; load average {os.getloadavg()[0]:.2f}; "
              f"ms per pass, best of {args.reps}")
        if args.e2e:
            run_e2e(plan[:: 2 if args.quick else 1], args.reps)
        else:
            for dtype in (torch.float32,) if args.quick else (torch.float32, torch.bfloat16):
                run_dtype(dtype, plan, names, args.reps)
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
        if "compile_s" in _FLEX:
            print(f"flex: first call (compile) {_FLEX['compile_s']:.1f} s, slowest block mask {_FLEX['mask_s']:.2f} s")
    finally:
        if load is not None:
            load.kill()
            load.wait()


def run_dtype(dtype: torch.dtype, plan: list[list[int]], names: list[str], reps: int) -> None:
    tokens = sum(map(sum, plan))
    results: dict[str, dict[str, str]] = {}
    for label, h, d in (("MiniLM h12 d32", 12, 32), ("BERT-base h12 d64", 12, 64)):
        batches = [make_batch(lengths, h, d, dtype, seed=i) for i, lengths in enumerate(plan)]
        scale = d**-0.5
        ref = [loop_sdpa(*b, scale).float() for b in batches]
        runnable: dict[str, Callable] = {}
        errors: dict[str, float] = {}
        for name in names:
            try:  # correctness against the loop, and the warm-up
                t0 = time.perf_counter()
                errors[name] = max(
                    (CANDIDATES[name](*b, scale).float() - r).abs().max().item()
                    for b, r in zip(batches, ref, strict=True)
                )
                if name == "flex":
                    _FLEX["compile_s"] = max(_FLEX.get("compile_s", 0.0), time.perf_counter() - t0)
                runnable[name] = CANDIDATES[name]
            except Exception as exc:  # e.g. no CPU kernel for the varlen op
                results.setdefault(name, {})[label] = f"n/a ({type(exc).__name__})"
        times = bench(runnable, batches, scale, reps)
        base = times.get("bz-loop") or times.get("loop-sdpa")
        for name, ms in times.items():
            rel = f" x{base / ms:.2f}" if base else ""
            results.setdefault(name, {})[label] = (f"{ms:7.1f} ms {tokens / ms:6.1f}k tok/s{rel} "
                                                   f"err {errors[name]:.0e}")
    print(f"\n{str(dtype).replace('torch.', '')}")
    print(f"{'candidate':<12} | {'MiniLM h12 d32':<40} | {'BERT-base h12 d64':<40}")
    for name, row in results.items():
        print(f"{name:<12} | {row.get('MiniLM h12 d32', ''):<40} | {row.get('BERT-base h12 d64', ''):<40}")


if __name__ == "__main__":
    main()
