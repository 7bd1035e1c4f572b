"""Training throughput: ``bertzoo train``'s step (packed) vs a plain transformers loop (and HF
Trainer), same run, same batches; plus accuracy of a short fine-tune on a small sentiment set.

Workload: real paragraphs from ``benchmarks/data/paragraphs.jsonl.gz`` (mixed lengths, truncated
at ``--max-length`` tokens), random binary labels, micro-batches of ``--batch-size`` rows in
arrival order (no length sorting: the padding a plain loop pays). Every contender trains
sequence-classification from the same checkpoint (default all-MiniLM-L6-v2) with AdamW, fp32
unless ``--bf16``; one timed unit = ``--steps`` optimizer steps (forward, backward, clip, step).

Rows (alternated A B A B, best of ``--reps``; tokens/s counts real tokens only):

- ``bertzoo-packed``: what ``bertzoo train`` runs: padding-free batches (``forward_packed``, the
  head's task contract, :class:`bertzoo.train.tasks.StepModule`).
- ``bertzoo-padded``: the same with ``--no-packed`` (shows where the gain comes from).
- ``hf-loop``: ``AutoModelForSequenceClassification`` (sdpa), batches padded to their longest.
- ``hf-trainer`` (``--trainer``): ``transformers.Trainer`` with ``DataCollatorWithPadding``, the
  same rows and order; its own loop overhead included.

Accuracy: ``bertzoo.train`` from the checkpoint on ``benchmarks/data/sentiment-train.jsonl`` (70
short reviews written for this benchmark, positive/negative), evaluated on
``sentiment-eval.jsonl`` (30 others); the untrained classifier's accuracy is printed beside it.

Run: ``python benchmarks/train.py --quick`` (CPU: 48 rows of at most 128 tokens, batches of 8, one
step a unit, best of 3, 4 epochs of fine-tuning; a few minutes on 2 quiet cores; add ``--threads 1``
on a busy machine) or without ``--quick``; ``--device cuda`` on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import alternate, machine_note, markdown_table  # noqa: E402

DATA = Path(__file__).parent / "data"


def paragraphs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    with gzip.open(DATA / "paragraphs.jsonl.gz", "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    rng = random.Random(seed)
    rng.shuffle(texts)
    return [{"text": t, "label": rng.randint(0, 1)} for t in texts[:n]]


def batches(ids: list[list[int]], labels: list[int], size: int) -> list[tuple[list[list[int]], list[int]]]:
    return [(ids[i:i + size], labels[i:i + size]) for i in range(0, len(ids), size)]


def bertzoo_contender(folder: str, rows: list[dict[str, Any]], args: argparse.Namespace, packed: bool,
                      device: torch.device) -> tuple[Callable[[], int], int]:
    """The training step ``bertzoo train`` runs (same modules, same objective code)."""
    from bertzoo.train.batches import to_device
    from bertzoo.train.config import TrainConfig
    from bertzoo.train.loop import make_optimizer
    from bertzoo.train.setup import Setup

    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / "d.jsonl"
        data_file.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        config = TrainConfig(train=str(data_file), output=tmp, model=folder, max_length=args.max_length,
                             packed=packed, bf16=args.bf16)
        setup = Setup(config, device, None)
        data = setup.encode(rows, "bench", fit=True)
    setup.load_model(None)
    assert setup.packed == packed, "this trunk cannot run packed batches"
    module = setup.step_module()
    optimizer = make_optimizer(setup.model, config)
    plan = [list(range(i, min(i + args.batch_size, len(data)))) for i in range(0, len(data), args.batch_size)]
    cursor = [0]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()

    def run() -> int:
        tokens = 0
        for _ in range(args.steps):
            rows_ = plan[cursor[0] % len(plan)]
            cursor[0] += 1
            batch = to_device(setup.objective.collate(data, rows_, packed=packed, pad_id=setup.pad_id), device)
            with autocast:
                loss = module(batch) / len(rows_)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            tokens += sum(data.lengths[i] for i in rows_)
        _sync(device)
        return tokens

    return run, sum(data.lengths)


def hf_contender(folder: str, ids: list[list[int]], labels: list[int], args: argparse.Namespace,
                 device: torch.device) -> Callable[[], int]:
    import transformers

    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2).to(device).train()
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    rest = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                                  lr=5e-5)
    plan = batches(ids, labels, args.batch_size)
    cursor = [0]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()

    def run() -> int:
        tokens = 0
        for _ in range(args.steps):
            b_ids, b_labels = plan[cursor[0] % len(plan)]
            cursor[0] += 1
            width = max(len(x) for x in b_ids)
            input_ids = torch.tensor([x + [0] * (width - len(x)) for x in b_ids], device=device)
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in b_ids], device=device)
            with autocast:
                loss = model(input_ids=input_ids, attention_mask=mask,
                             labels=torch.tensor(b_labels, device=device)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            tokens += sum(len(x) for x in b_ids)
        _sync(device)
        return tokens

    return run


def trainer_contender(folder: str, ids: list[list[int]], labels: list[int], args: argparse.Namespace,
                      device: torch.device) -> Callable[[], int]:
    import transformers

    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    n = args.steps * args.batch_size
    rows = [{"input_ids": x, "attention_mask": [1] * len(x), "labels": y} for x, y in zip(ids, labels, strict=True)]
    out = tempfile.mkdtemp()

    def run() -> int:
        start = random.Random(0).randrange(0, max(1, len(rows) - n))
        subset = rows[start:start + n]
        training = transformers.TrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size, max_steps=args.steps, report_to=[],
            save_strategy="no", logging_strategy="no", disable_tqdm=True, use_cpu=device.type == "cpu",
            bf16=args.bf16, dataloader_num_workers=0)
        trainer = transformers.Trainer(model=model, args=training, train_dataset=subset,
                                       data_collator=transformers.DataCollatorWithPadding(tokenizer))
        trainer.train()
        return sum(len(r["input_ids"]) for r in subset)

    return run


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def throughput(folder: str, args: argparse.Namespace, device: torch.device) -> None:
    rows = paragraphs(args.rows)
    from bertzoo.inference.tokenizer import Tokenizer

    tok = Tokenizer.from_folder(folder, max_length=args.max_length)
    ids = tok.encode_ids([r["text"] for r in rows]).ids
    labels = [r["label"] for r in rows]
    real = sum(len(x) for x in ids)
    padded = sum(max(len(x) for x in b) * len(b) for b, _ in batches(ids, labels, args.batch_size))
    contenders: dict[str, Callable[[], int]] = {}
    contenders["bertzoo-packed"], _ = bertzoo_contender(folder, rows, args, True, device)
    contenders["bertzoo-padded"], _ = bertzoo_contender(folder, rows, args, False, device)
    contenders["hf-loop"] = hf_contender(folder, ids, labels, args, device)
    if args.trainer:
        import importlib.util

        if importlib.util.find_spec("accelerate") is None:
            print("hf-trainer skipped: transformers.Trainer needs the accelerate package, not installed here")
        else:
            contenders["hf-trainer"] = trainer_contender(folder, ids, labels, args, device)
    print(f"{len(rows)} paragraphs, {real} real tokens, {padded} padded ({1 - real / padded:.0%} padding), "
          f"batch {args.batch_size}, {args.steps} steps a unit, {'bf16 autocast' if args.bf16 else 'fp32'}, "
          f"{device}, {torch.get_num_threads()} threads")
    timings = alternate(contenders, repeats=args.reps, warmup=1, log=print if args.verbose else None)
    base = timings["hf-loop"]
    base_rate = base.result / base.best
    table = []
    for name, t in timings.items():
        rate = t.result / t.best
        table.append([name, f"{rate:,.0f}", f"{rate / base_rate:.2f}x", f"{t.spread():.2f}"])
    print(markdown_table(["contender", "real tokens/s", "vs hf-loop", "spread"], table))


def accuracy(folder: str, args: argparse.Namespace) -> None:
    import bertzoo

    with tempfile.TemporaryDirectory() as out:
        common = {"train": str(DATA / "sentiment-train.jsonl"), "eval": str(DATA / "sentiment-eval.jsonl"),
                  "progress": False, "device": args.device, "threads": args.threads, "save_steps": 10**6}
        before = bertzoo.train(folder, output=out + "/zero", max_steps=1, learning_rate=1e-12, **common)
        result = bertzoo.train(folder, output=out + "/ft", epochs=args.epochs, batch_size=16, learning_rate=3e-4,
                               warmup_ratio=0.1, max_length=64, **common)
    best = result.best or {}
    print(f"sentiment (70 train / 30 eval), {args.epochs} epochs from {Path(folder).name}: accuracy "
          f"{result.metrics['accuracy']:.3f} at the end, best {best.get('value', float('nan')):.3f} at step "
          f"{best.get('step')} (untrained head {before.metrics['accuracy']:.3f}; eval set 1/3 positive)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="checkpoint (default all-MiniLM-L6-v2)")
    p.add_argument("--quick", action="store_true", help="64 rows, 2 steps a unit, best of 2")
    p.add_argument("--rows", type=int, default=256)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--trainer", action="store_true", help="add transformers.Trainer")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is steadiest on a busy machine)")
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.rows, args.steps, args.reps, args.max_length, args.batch_size = 48, 1, 3, 128, 8
    if args.threads:
        torch.set_num_threads(args.threads)
    from bertzoo.checkpoint.default_model import resolve_model

    folder = str(resolve_model(args.model))
    print(machine_note())
    throughput(folder, args, torch.device(args.device))
    if not args.skip_accuracy:
        accuracy(folder, args)


if __name__ == "__main__":
    main()
