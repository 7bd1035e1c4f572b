"""Encoder throughput per model family: bertzoo vs transformers on the same mixed-length workload, same run.

Workload: ``--sequences`` sequences (default 256) with lengths uniform in [8, 128] (fixed seed),
batches of 32 in arrival order, right padding (with the family's pad id) to each batch's longest.
Shape: MiniLM-sized random weights (384 hidden, 6 layers, 12 heads, 1536 FFN; ELECTRA/ALBERT
embedding size 128), saved once with transformers and loaded by both.

Rows, per family (each family's two rows alternated pass by pass, best of ``--reps``):

- ``transformers``: the family's ``*Model`` with ``attn_implementation="sdpa"`` (its default), fp32.
- ``bertzoo``: ``bertzoo.from_pretrained`` of the same folder, attention ``auto`` (packed), fp32.

Printed per family: real tokens/s of both, the ratio, and the max abs difference of the last hidden
state on real tokens of the first batch. To add a family, add a row to :data:`FAMILIES`
(transformers config class, model class, config entries).

Run: ``python benchmarks/families.py`` (every family, 256 sequences, best of 3) or
``python benchmarks/families.py --quick`` (64 sequences, best of 2), optionally ``--family roberta``.
The machine is shared: numbers are only comparable within one run (see benchmarks/_timing.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import alternate, machine_note, markdown_table  # noqa: E402

SHAPE = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
             vocab_size=30522, max_position_embeddings=514)
# family (model_type) → (transformers config class, transformers model class, config entries)
FAMILIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "bert": ("BertConfig", "BertModel", {}),
    "roberta": ("RobertaConfig", "RobertaModel", {"pad_token_id": 1, "type_vocab_size": 1, "layer_norm_eps": 1e-5}),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaModel",
                    {"pad_token_id": 1, "type_vocab_size": 1, "layer_norm_eps": 1e-5}),
    "electra": ("ElectraConfig", "ElectraModel", {"embedding_size": 128}),
    "distilbert": ("DistilBertConfig", "DistilBertModel", {"hidden_dim": 1536}),  # its FFN width's name
    "albert": ("AlbertConfig", "AlbertModel", {"embedding_size": 128}),  # one layer applied 6 times
}
LENGTHS = (8, 128)
BATCH = 32


def workload(n: int, pad_id: int, vocab: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Right-padded batches of ``BATCH`` sequences, lengths uniform in ``LENGTHS``; real ids avoid ``pad_id``."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(LENGTHS[0], LENGTHS[1] + 1, (n,), generator=g)
    batches = []
    for start in range(0, n, BATCH):
        chunk = lengths[start:start + BATCH]
        S = int(chunk.max())
        mask = (torch.arange(S)[None] < chunk[:, None]).long()
        ids = torch.randint(3, vocab, (len(chunk), S), generator=g)
        ids = ids.masked_fill(mask == 0, pad_id)
        batches.append({"input_ids": ids, "attention_mask": mask})
    return batches


def run_family(family: str, folder: Path, batches: list[dict[str, torch.Tensor]], reps: int) -> list[Any]:
    import transformers

    import bertzoo

    config_cls, model_cls, extra = FAMILIES[family]
    torch.manual_seed(0)
    hf = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**SHAPE, **extra))
    hf.save_pretrained(folder)
    hf = getattr(transformers, model_cls).from_pretrained(folder, attn_implementation="sdpa").eval()
    ours = bertzoo.from_pretrained(folder).eval()
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)

    def full(model: Any) -> Any:
        def go() -> None:
            with torch.inference_mode():
                for b in batches:
                    model(**b)
        return go

    first = batches[0]
    real = first["attention_mask"].bool()
    with torch.inference_mode():
        diff = float((hf(**first).last_hidden_state[real] - ours(**first).last_hidden_state[real]).abs().max())
    timings = alternate({"transformers": full(hf), "bertzoo": full(ours)}, repeats=reps, warmup=1)
    hf_tps, bz_tps = tokens / timings["transformers"].best, tokens / timings["bertzoo"].best
    return [family, f"{hf_tps:,.0f}", f"{bz_tps:,.0f}", f"{bz_tps / hf_tps:.2f}x", f"{diff:.1e}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 sequences, best of 2")
    parser.add_argument("--family", action="append", choices=sorted(FAMILIES), help="only these families")
    parser.add_argument("--sequences", type=int, default=256)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    n, reps = (64, 2) if args.quick else (args.sequences, args.reps)
    print(machine_note(), f"| load {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.family or list(FAMILIES):
            pad = int(FAMILIES[family][2].get("pad_token_id", 0))
            batches = workload(n, pad, SHAPE["vocab_size"])
            rows.append(run_family(family, Path(tmp) / family, batches, reps))
            print(rows[-1], flush=True)
    print(f"\n{n} sequences, lengths {LENGTHS[0]}-{LENGTHS[1]}, batches of {BATCH}, fp32, best of {reps}; "
          f"load at end {os.getloadavg()[0]:.2f}")
    print(markdown_table(["family", "transformers tokens/s", "bertzoo tokens/s", "ratio", "max abs diff"], rows))


if __name__ == "__main__":
    main()
