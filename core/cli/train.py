"""``bertzoo train``: fine-tune a head on CSV, JSON-lines or parquet data (docs/training.md).

One flag per field of :class:`bertzoo.train.config.TrainConfig`; ``bertzoo.train(...)`` takes the
same names as keywords. Under ``torchrun --nproc-per-node N -m bertzoo train ...`` it runs DDP.
Light to import: torch loads when the command runs.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from bertzoo.cli.build import parse_set

_OBJECTIVES = ("sequence-classification", "token-classification", "sentence-embedding", "rerank")


def run(args: argparse.Namespace) -> int:
    from bertzoo.train.config import TrainConfig
    from bertzoo.train.loop import run as train

    options = {k: v for k, v in vars(args).items() if k not in ("func", "command", "debug", "set", "quiet")}
    options["extra"] = parse_set(args.set or [])
    if getattr(args, "quiet", False):  # --quiet: no progress bar; the summary line is the result
        options["progress"] = False
    result = train(TrainConfig.from_kwargs(**options))
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return 0
    summary = " ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    print(f"trained {result.steps} steps; model in {result.output}" + (f"; eval: {summary}" if summary else ""))
    return 0


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help="fine-tune a head on a CSV, JSON-lines or parquet file",
        description="Fine-tune a model with a head; the final folder loads in bertzoo and transformers. "
                    "Run under `torchrun --nproc-per-node N -m bertzoo train ...` for DDP.")
    data = p.add_argument_group("model and data")
    data.add_argument("--model", "-m", default=None, help="model folder or hub id (default: all-MiniLM-L6-v2)")
    data.add_argument("--head", default="sequence-classification", metavar="HEAD",
                      help=f"{', '.join(_OBJECTIVES)}, or a registered head whose task one of them trains "
                           "(default sequence-classification)")
    data.add_argument("--train", required=True, metavar="FILE", help="training data: .csv, .tsv, .jsonl or .parquet")
    data.add_argument("--eval", default=None, metavar="FILE", help="evaluation data, same format")
    data.add_argument("--output", "-o", required=True, metavar="DIR", help="folder for the final model and checkpoints")
    data.add_argument("--text-field", default="text", help="text column (token classification: the words)")
    data.add_argument("--text-pair-field", default=None,
                      help="second text column (pairs; the positive of sentence-embedding; the passage of rerank)")
    data.add_argument("--label-field", default="label", help="label column (token classification: word tags)")
    data.add_argument("--problem-type", default=None,
                      choices=("single_label_classification", "multi_label_classification", "regression"),
                      help="sequence-classification loss (default: from the labels)")
    data.add_argument("--max-length", type=int, default=None, help="tokens per text (default: the model's)")
    data.add_argument("--label-all-tokens", action="store_true", help="token classification: label every word piece")
    data.add_argument("--set", action="append", metavar="KEY=VALUE",
                      help="model override passed to from_pretrained (e.g. hidden_dropout_prob=0.2); repeatable")

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int, default=3, help="passes over the data (default 3)")
    opt.add_argument("--max-steps", type=int, default=None, help="train this many optimizer steps (overrides --epochs)")
    opt.add_argument("--learning-rate", "--lr", type=float, default=5e-5, help="peak learning rate (default 5e-5)")
    opt.add_argument("--warmup-ratio", type=float, default=0.0, help="share of steps warming up (default 0)")
    opt.add_argument("--warmup-steps", type=int, default=None, help="warm-up steps (overrides --warmup-ratio)")
    opt.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (default 0.01)")
    opt.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping norm (default 1; 0 = off)")
    opt.add_argument("--batch-size", type=int, default=32, help="rows per micro-batch and process (default 32)")
    opt.add_argument("--batch-tokens", type=int, default=None,
                     help="token budget per micro-batch (all processes together) instead of --batch-size")
    opt.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step (default 1)")
    opt.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    opt.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    opt.add_argument("--scale", type=float, default=20.0, help="sentence-embedding: similarity scale (default 20)")
    opt.add_argument("--no-packed", dest="packed", action="store_false",
                     help="padded batches even when the trunk runs packed (padding-free) ones")
    opt.add_argument("--fsdp", action="store_true", help="shard the model with FSDP2 (under torchrun)")
    opt.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when present)")
    opt.add_argument("--attention", default=None, help="attention implementation (default auto)")
    opt.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")

    ev = p.add_argument_group("evaluation and checkpoints")
    ev.add_argument("--eval-steps", type=int, default=None, help="evaluate every N steps (default: every epoch)")
    ev.add_argument("--metric", default=None,
                    help="metric for the best checkpoint and early stopping (default: accuracy, mse, f1 or mrr@10)")
    ev.add_argument("--early-stopping", type=int, default=None, metavar="N",
                    help="stop after N evaluations without improvement")
    ev.add_argument("--save-steps", type=int, default=None, help="checkpoint every N steps (default: every epoch)")
    ev.add_argument("--keep-checkpoints", type=int, default=2, help="keep the last K checkpoints plus the best")
    ev.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output")
    ev.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    ev.add_argument("--log-steps", type=int, default=50, help="log the loss every N steps without a progress bar")
    p.set_defaults(func=run)


__all__ = ["add_parser", "run"]
