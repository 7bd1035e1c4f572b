"""Encoder throughput: bertzoo vs transformers' BertModel on mixed-length batches, same run.

Workload (issue 6): 256 sequences with lengths uniform in [8, 128] (fixed seed), batches of 32
in arrival order, right padding to each batch's longest. Shapes: MiniLM (384 hidden, 6 layers,
12 heads, 1536 FFN) and BERT-base (768, 12, 12, 3072), random weights shared by every row.

Rows (each measured in the same process, rows alternated pass by pass, best of ``--reps``):

- ``hf-eager`` / ``hf-sdpa``: transformers' BertModel with that ``attn_implementation`` (no pooler).
- ``hf-sdpa-autocast`` (bf16 tables only): the fp32 model under ``torch.autocast("cpu", bfloat16)``.
- ``bertzoo-eager`` / ``bertzoo-sdpa``: bertzoo's BertModel from the same weights, padded.
- ``bertzoo-flash-padded``: attention ``flash`` with packing switched off (``pack_inputs=False``):
  gathers and scatters around every attention call.
- ``bertzoo-flash-packed``: attention ``auto`` (what users get): real tokens gathered once into
  ``[T, H]`` after the embeddings, every layer packed, re-padded at the end.

bf16 tables cast every model's weights to bf16 (a real bf16 model, not autocast) except the
autocast row. Printed per row: real tokens/s, ratio to ``hf-sdpa``, model GFLOP/s and MFU against
the achievable GEMM speed timed alternated with the rows (the model's own linear layers on the
batches' real token counts, ``benchmarks/_gemm.py``, through MKL's matmul and through oneDNN, the
higher of the two), max error against fp32 ``hf-eager`` on real
positions of the first batch, and the spread of the timed passes (slowest / fastest). FLOPs count
real tokens only: linear layers ``2·T·in·out`` plus attention ``4·Σ len²·H``, per layer.

Run: ``python benchmarks/encoder.py`` (both shapes, fp32 and bf16, 8 batches, best of 3: about
10 minutes on 2 quiet cores) or ``python benchmarks/encoder.py --quick`` (2 batches, best of 2,
fp32). The machine is shared: run when ``uptime`` shows a 1-minute load below ~2.5; the script
prints the load average at start and end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _gemm import gemm_probe, layer_gemms, linear_flops  # noqa: E402
from _timing import alternate, machine_note, markdown_table  # noqa: E402

SHAPES = {
    "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


# -- workload -------------------------------------------------------------------------------------------


@dataclass
class Batch:
    input_ids: Tensor  # (B, S) right-padded with 0
    attention_mask: Tensor  # (B, S) 1 = real token
    real_tokens: int
    sum_len_sq: int


def workload(n: int = 256, batch: int = 32, seed: int = 0, vocab: int = 30522) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(8, 129, (n,), generator=g).tolist()
    batches = []
    for i in range(0, n, batch):
        chunk = lengths[i : i + batch]
        width = max(chunk)
        ids = torch.zeros(len(chunk), width, dtype=torch.long)
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        for row, length in enumerate(chunk):
            ids[row, :length] = torch.randint(1, vocab, (length,), generator=g)
            mask[row, :length] = 1
        batches.append(Batch(ids, mask, sum(chunk), sum(x * x for x in chunk)))
    return batches


def model_flops(shape: dict[str, int], batches: list[Batch]) -> float:
    """FLOPs of one pass over ``batches``, real tokens only (embeddings and LayerNorm not counted)."""
    h, i, layers = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    tokens = sum(b.real_tokens for b in batches)
    linear = 2 * tokens * (4 * h * h + 2 * h * i)  # q, k, v, output; FFN in and out
    attention = 4 * sum(b.sum_len_sq for b in batches) * h  # q·kᵀ and p·v over every head
    return float(layers * (linear + attention))


def gemm_kernels(shape: dict[str, int], batches: list[Batch], dtype: torch.dtype) -> dict[str, tuple[Callable[[], Any], float]]:
    """The GEMM probes: name -> (callable, FLOPs per call).

    Each call runs the model's own linear layers on the packed batches' real token counts
    (``benchmarks/_gemm.py``: query, key, value, output, FFN up with GELU, FFN down, per layer)
    through one CPU GEMM library: ``matmul`` (MKL's sgemm for fp32: what transformers' linears
    use) and ``onednn`` (the linear bertzoo's layers use in inference). They are timed alternated
    with the model rows, so the probe sees the same machine state; MFU is reported against the
    faster one.
    """
    gemms = layer_gemms([b.real_tokens for b in batches], shape["hidden_size"], shape["intermediate_size"],
                        shape["num_hidden_layers"])
    flops = linear_flops(gemms)
    return {name: (fn, flops) for name, fn in gemm_probe(gemms, dtype).items()}


# -- rows ---------------------------------------------------------------------------------------------------


Row = Callable[[Batch], Tensor]


def hf_models(shape: dict[str, int], seed: int = 0) -> dict[str, Any]:
    """transformers' BertModel (no pooler) per attn_implementation, all with the same random weights."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    base = BertModel(BertConfig(**shape), add_pooling_layer=False).eval()
    models = {}
    for impl in ("eager", "sdpa"):
        m = BertModel(BertConfig(**shape, attn_implementation=impl), add_pooling_layer=False).eval()
        m.load_state_dict(base.state_dict())
        models[impl] = m
    return models


def bertzoo_models(hf: Any) -> dict[str, Any]:
    """bertzoo's BertModel from the same weights: padded eager and sdpa, flash padded and packed."""
    import bertzoo

    folder = tempfile.mkdtemp(prefix="bertzoo-bench-")
    hf.save_pretrained(folder)
    models = {}
    for name, attention, pack in (("eager", "eager", False), ("sdpa", "sdpa", False),
                                  ("flash-padded", "flash", False), ("flash-packed", "auto", True)):
        model = bertzoo.from_pretrained(folder, attention=attention).eval()
        model.pack_inputs = pack
        models[name] = model
    return models


def hf_row(model: Any, autocast: bool = False) -> Row:
    def run(b: Batch) -> Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
            return model(input_ids=b.input_ids, attention_mask=b.attention_mask).last_hidden_state
    return run


def bertzoo_row(model: Any) -> Row:
    def run(b: Batch) -> Tensor:
        out = model(input_ids=b.input_ids, attention_mask=b.attention_mask).last_hidden_state
        assert model.last_call_packed == model.pack_inputs, "the row did not run as labelled"
        return out
    return run


def max_error(rows: dict[str, Row], reference: Row, batch: Batch) -> dict[str, float]:
    """Largest difference to ``reference`` on the real positions of ``batch``."""
    real = batch.attention_mask.bool()
    ref = reference(batch).float()[real]
    return {name: (fn(batch).float()[real] - ref).abs().max().item() for name, fn in rows.items()}


def run_shape(shape_name: str, dtype_name: str, batches: list[Batch], reps: int) -> list[list[str]]:
    """One table: every row timed over ``batches`` (alternated, best of ``reps``)."""
    shape, dtype = SHAPES[shape_name], DTYPES[dtype_name]
    hf = hf_models(shape)
    ours = bertzoo_models(hf["eager"])
    for m in (*hf.values(), *ours.values()):
        m.to(dtype)
    rows: dict[str, Row] = {f"hf-{k}": hf_row(m) for k, m in hf.items()}
    if dtype == torch.bfloat16:
        hf32 = hf_models(shape)["sdpa"]
        rows["hf-sdpa-autocast"] = hf_row(hf32, autocast=True)
    rows |= {f"bertzoo-{k}": bertzoo_row(m) for k, m in ours.items()}
    tokens = sum(b.real_tokens for b in batches)
    flops = model_flops(shape, batches)
    with torch.inference_mode():
        if dtype == torch.float32:
            errors = max_error(rows, rows["hf-eager"], batches[0])
        else:  # bf16 rows against the fp32 HF model
            fp32 = hf_models(shape)["eager"]
            errors = max_error(rows, hf_row(fp32), batches[0])
        gemms = gemm_kernels(shape, batches, dtype)
        for fn in rows.values():
            fn(batches[0])  # warm-up: first-call allocations, oneDNN primitive caches
        for fn, _ in gemms.values():
            fn()
        contenders = {name: (lambda fn=fn: [fn(b) for b in batches]) for name, fn in rows.items()}
        contenders |= {f"gemm-{name}": fn for name, (fn, _) in gemms.items()}
        timings = alternate(contenders, repeats=reps, warmup=0)
    peaks = {name: gemm_flops / timings.pop(f"gemm-{name}").best for name, (_, gemm_flops) in gemms.items()}
    peak = max(peaks.values())
    base = timings["hf-sdpa"].best
    print(f"\n{shape_name} {dtype_name}: {tokens} real tokens, {flops / 1e9:.1f} GFLOP per pass; GEMM peak "
          + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in peaks.items())
          + " GFLOP/s on the model's own GEMM shapes (MFU uses the higher)")
    table = []
    for name, t in timings.items():
        table.append([name, f"{tokens / t.best:.0f}", f"{base / t.best:.2f}x", f"{flops / t.best / 1e9:.0f}",
                      f"{flops / t.best / peak:.0%}", f"{errors[name]:.1e}", f"{t.spread():.2f}"])
    print(markdown_table([f"{shape_name} {dtype_name}", "tokens/s", "vs hf-sdpa", "GFLOP/s", "MFU", "max err",
                          "spread"], table))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--dtypes", nargs="*", default=None, choices=list(DTYPES),
                        help="default: fp32 bf16 (--quick: fp32)")
    parser.add_argument("--batches", type=int, default=None, help="how many of the 8 batches (default 8, --quick 2)")
    parser.add_argument("--reps", type=int, default=None, help="timed passes per row (default 3, --quick 2)")
    parser.add_argument("--quick", action="store_true", help="2 batches, 2 reps, fp32 only: a few minutes")
    args = parser.parse_args()
    dtypes = args.dtypes or (["fp32"] if args.quick else list(DTYPES))
    n_batches = args.batches or (2 if args.quick else 8)
    reps = args.reps or (2 if args.quick else 3)

    batches = workload()[:n_batches]
    tokens = sum(b.real_tokens for b in batches)
    padded = sum(b.input_ids.numel() for b in batches)
    print(f"{machine_note()}; load average {os.getloadavg()[0]:.1f} at start")
    print(f"{len(batches)} batches of 32, {tokens} real tokens ({1 - tokens / padded:.0%} of the padded batch is "
          f"padding); best of {reps}, rows alternated; max err vs hf-eager fp32 on real positions of batch 1")
    for shape_name in args.shapes:
        for dtype_name in dtypes:
            run_shape(shape_name, dtype_name, batches, reps)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end (1 min); spread = slowest / fastest pass of a row")


if __name__ == "__main__":
    main()
