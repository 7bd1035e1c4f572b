"""Encoder throughput: bertzoo vs transformers' BertModel on mixed-length batches, same run.

Workload (issue 6): 256 sequences with lengths uniform in [8, 128] (fixed seed), batches of 32
in arrival order, right padding to each batch's longest. Shapes: MiniLM (384 hidden, 6 layers,
12 heads, 1536 FFN) and BERT-base (768, 12, 12, 3072), random weights shared by every row.

Rows (each measured in the same process, alternated round by round, best of ``--reps``):

- ``hf-eager`` / ``hf-sdpa``: transformers' BertModel with that ``attn_implementation``.
- ``packed-prototype``: the same HF weights run packed: real tokens gathered once after the
  embeddings into ``[T, H]``, fused QKV projection, every linear layer on real tokens only,
  variable-length attention (:func:`bertzoo.plugins.flash.varlen_loop`), re-padded at the end.
  It shows the headroom that packed execution in ``bertzoo.model`` should reach.
- ``bertzoo-<attention>``: bertzoo's model loaded from the same weights (once the model lands;
  a row that cannot run prints why).

Printed per row: real tokens/s, ratio to ``hf-sdpa``, model FLOP/s and MFU against a GEMM peak
measured in the same run (an ``[T, H] x [H, 4H]`` matmul in the same dtype). FLOPs count real
tokens only: linear layers ``2·T·in·out`` plus attention ``4·Σ len²·H``, per layer.
bf16 rows run under ``torch.autocast("cpu", dtype=torch.bfloat16)`` and are compared with the bf16
GEMM peak.

Run: ``python benchmarks/encoder.py [--shapes minilm bert-base] [--dtypes fp32 bf16] [--batches 8]
[--reps 3]``. The full run takes minutes on 2 cores; ``--batches 2 --reps 2`` is a quick look.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

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


def gemm_peak(shape: dict[str, int], dtype: torch.dtype, reps: int = 5) -> float:
    """FLOP/s of a large ``[T, H] x [H, 4H]`` matmul: the ceiling for the model's FFN-sized GEMMs."""
    h = shape["hidden_size"]
    a, b = torch.randn(2048, h, dtype=dtype), torch.randn(h, 4 * h, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * 2048 * h * 4 * h / best


# -- the packed prototype ----------------------------------------------------------------------------------


class PackedPrototype:
    """HF BertModel weights run packed: ``[T, H]`` real tokens through every layer."""

    def __init__(self, hf: Any) -> None:
        from bertzoo.plugins.flash import varlen_loop

        self.varlen = varlen_loop
        self.embeddings = hf.embeddings
        cfg = hf.config
        self.h, self.d = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
        self.eps = cfg.layer_norm_eps
        self.layers = []
        for layer in hf.encoder.layer:
            att = layer.attention.self
            self.layers.append(dict(
                qkv_w=torch.cat([att.query.weight, att.key.weight, att.value.weight]).detach(),
                qkv_b=torch.cat([att.query.bias, att.key.bias, att.value.bias]).detach(),
                o=layer.attention.output.dense, ln1=layer.attention.output.LayerNorm,
                i=layer.intermediate.dense, out=layer.output.dense, ln2=layer.output.LayerNorm,
            ))

    @torch.inference_mode()
    def __call__(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        b, s = input_ids.shape
        real = attention_mask.bool()
        keep = real.flatten().nonzero().squeeze(1)  # (T,)
        lengths = real.sum(-1).tolist()
        offsets = [0]
        for n in lengths:
            offsets.append(offsets[-1] + n)
        x = self.embeddings(input_ids=input_ids).flatten(0, 1).index_select(0, keep)  # (T, H)
        t, hidden = x.shape
        for p in self.layers:
            qkv = F.linear(x, p["qkv_w"], p["qkv_b"]).view(t, 3, self.h, self.d)  # (T, 3, h, d)
            ctx = self.varlen(qkv[:, 0], qkv[:, 1], qkv[:, 2], offsets, causal=False, dropout_p=0.0,
                              scale=self.d**-0.5)  # (T, h, d)
            x = F.layer_norm(p["o"](ctx.reshape(t, hidden)) + x, (hidden,), p["ln1"].weight, p["ln1"].bias, self.eps)
            y = p["out"](F.gelu(p["i"](x)))
            x = F.layer_norm(y + x, (hidden,), p["ln2"].weight, p["ln2"].bias, self.eps)
        return x.new_zeros(b * s, hidden).index_copy_(0, keep, x).view(b, s, hidden)  # re-pad


# -- rows ---------------------------------------------------------------------------------------------------


def hf_models(shape: dict[str, int], seed: int = 0) -> dict[str, Any]:
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    base = BertModel(BertConfig(**shape), add_pooling_layer=False).eval()
    models = {}
    for impl in ("eager", "sdpa"):
        m = BertModel(BertConfig(**shape, attn_implementation=impl), add_pooling_layer=False).eval()
        m.load_state_dict(base.state_dict())
        models[impl] = m
    return models


def bertzoo_rows(hf: Any, attentions: list[str]) -> dict[str, Callable[[Batch], Tensor] | str]:
    """bertzoo's model from the HF weights, one row per attention; a string says why a row cannot run."""
    rows: dict[str, Callable[[Batch], Tensor] | str] = {}
    try:
        import bertzoo

        folder = tempfile.mkdtemp(prefix="bertzoo-bench-")
        hf.save_pretrained(folder)
    except Exception as exc:
        return {f"bertzoo-{a}": f"n/a ({type(exc).__name__}: {exc})" for a in attentions}
    for attention in attentions:
        try:
            model = bertzoo.from_pretrained(folder, attention=attention).eval()
        except Exception as exc:  # the model has not landed yet, or this attention is refused
            rows[f"bertzoo-{attention}"] = f"n/a ({type(exc).__name__}: {str(exc)[:80]})"
            continue

        def run(b: Batch, model: Any = model) -> Tensor:
            return model(input_ids=b.input_ids, attention_mask=b.attention_mask).last_hidden_state

        rows[f"bertzoo-{attention}"] = run
    return rows


def measure(rows: dict[str, Callable[[Batch], Tensor]], batches: list[Batch], dtype: torch.dtype,
            reps: int) -> dict[str, float]:
    """Best-of-``reps`` seconds per pass over ``batches``; rows alternate each round."""
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if dtype == torch.bfloat16
                else contextlib.nullcontext())
    best = dict.fromkeys(rows, float("inf"))
    with torch.inference_mode(), autocast:
        for fn in rows.values():
            fn(batches[0])  # warm-up
        for _ in range(reps):
            for name, fn in rows.items():
                t0 = time.perf_counter()
                for b in batches:
                    fn(b)
                best[name] = min(best[name], time.perf_counter() - t0)
    return best


def max_error(rows: dict[str, Callable[[Batch], Tensor]], reference: Callable[[Batch], Tensor],
              batches: list[Batch], dtype: torch.dtype) -> dict[str, float]:
    """Largest difference to ``reference`` (hf-eager) on real positions of the first batch."""
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if dtype == torch.bfloat16
                else contextlib.nullcontext())
    b = batches[0]
    real = b.attention_mask.bool()
    with torch.inference_mode(), autocast:
        ref = reference(b).float()[real]
        return {name: (fn(b).float()[real] - ref).abs().max().item() for name, fn in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--dtypes", nargs="*", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--batches", type=int, default=8, help="how many of the 8 batches to run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--attentions", nargs="*", default=["eager", "sdpa", "flash"],
                        help="bertzoo attention implementations to add as rows")
    args = parser.parse_args()

    batches = workload()[: args.batches]
    tokens = sum(b.real_tokens for b in batches)
    padded = sum(b.input_ids.numel() for b in batches)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(batches)} batches of 32, "
          f"{tokens} real tokens ({1 - tokens / padded:.0%} of the padded batch is padding); best of {args.reps}")
    for shape_name in args.shapes:
        shape = SHAPES[shape_name]
        hf = hf_models(shape)
        prototype = PackedPrototype(hf["eager"])
        rows: dict[str, Callable[[Batch], Tensor]] = {
            f"hf-{impl}": (lambda b, m=m: m(input_ids=b.input_ids, attention_mask=b.attention_mask).last_hidden_state)
            for impl, m in hf.items()
        }
        rows["packed-prototype"] = lambda b, p=prototype: p(b.input_ids, b.attention_mask)
        skipped = {}
        for name, row in bertzoo_rows(hf["eager"], args.attentions).items():
            if isinstance(row, str):
                skipped[name] = row
            else:
                rows[name] = row
        flops = model_flops(shape, batches)
        for dtype_name in args.dtypes:
            dtype = DTYPES[dtype_name]
            errors = max_error(rows, rows["hf-eager"], batches, dtype)
            peak = gemm_peak(shape, dtype)
            times = measure(rows, batches, dtype, args.reps)
            base = times["hf-sdpa"]
            print(f"\n{shape_name} {dtype_name}: GEMM peak {peak / 1e9:.1f} GFLOP/s, "
                  f"{flops / 1e9:.1f} GFLOP per pass (real tokens)")
            print(f"{'row':<18} {'tokens/s':>10} {'vs hf-sdpa':>10} {'GFLOP/s':>8} {'MFU':>6} {'max err':>9}")
            for name, seconds in times.items():
                print(f"{name:<18} {tokens / seconds:>10.0f} {base / seconds:>9.2f}x "
                      f"{flops / seconds / 1e9:>8.1f} {flops / seconds / peak:>6.0%} {errors[name]:>9.1e}")
            for name, why in skipped.items():
                print(f"{name:<18} {why}")


if __name__ == "__main__":
    main()
