"""The training loop: AdamW with linear warm-up and decay, gradient accumulation, bf16 autocast,
evaluation, early stopping, checkpoints and resume, on one process or many.

Choices, as transformers' Trainer makes them unless said otherwise:

- AdamW (betas 0.9/0.999, eps 1e-8); no weight decay on biases and normalisation weights;
- the learning rate rises linearly over the warm-up steps, then falls linearly to 0 at the last step;
- gradients clipped to ``max_grad_norm`` (global L2 norm) before each step;
- an optimizer step sums the micro-batches of ``grad_accum`` and of every process, and divides the
  summed loss by the item count of the whole step (not a mean of means): accumulation and DDP give
  the gradient one process would compute on the whole batch;
- packed (padding-free) micro-batches when the trunk runs them (:mod:`bertzoo.train.batches`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bertzoo.errors import InputError
from bertzoo.train import checkpoints as C
from bertzoo.train import distributed as dist_
from bertzoo.train.batches import epoch_plan, shard, to_device
from bertzoo.train.config import TrainConfig
from bertzoo.train.data import Encoded, read_rows
from bertzoo.train.evaluate import evaluate
from bertzoo.train.metrics import improved
from bertzoo.train.setup import Setup, build_setup
from bertzoo.train.tasks import SequenceClassification

logger = logging.getLogger("bertzoo.train")


@dataclass
class TrainResult:
    """What :func:`bertzoo.train` returns: the final folder, the log, the last and the best evaluation."""

    output: Path
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    best: dict[str, Any] | None = None
    stopped_early: bool = False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def no_decay(model: nn.Module) -> set[str]:
    """Names of parameters without weight decay: biases and normalisation weights (HF's rule)."""
    names = set()
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or "norm" in type(module).__name__.lower()
        for name, _ in module.named_parameters(recurse=False):
            if is_norm or name == "bias":
                names.add(f"{module_name}.{name}" if module_name else name)
    return names


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    skip = no_decay(model)
    params = list(model.named_parameters())  # tied weights appear once
    groups = [
        {"params": [p for n, p in params if n not in skip and p.requires_grad], "weight_decay": config.weight_decay},
        {"params": [p for n, p in params if n in skip and p.requires_grad], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-8)


def linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    """HF's ``get_linear_schedule_with_warmup`` factor of step ``s``."""
    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


class Trainer:
    """One training run of :class:`TrainConfig`; :meth:`run` does it all."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config.check()
        self.world, self.device = dist_.setup(config.device)
        self.output = Path(config.output)

    # -- planning ------------------------------------------------------------------------------------
    def plan(self, epoch: int) -> list[list[list[int]]]:
        """Optimizer steps of ``epoch``: each a list of global micro-batches (row indices)."""
        c = self.config
        budget = c.batch_tokens
        size = c.batch_size * self.world.size  # rows per micro-batch, all processes together
        micro = epoch_plan(self.train_data.lengths, epoch=epoch, seed=c.seed, batch_size=size, batch_tokens=budget)
        return [micro[i:i + c.grad_accum] for i in range(0, len(micro), c.grad_accum)]

    def total_steps(self) -> int:
        """``max_steps`` when given (epochs then run until it is reached), else every epoch's steps."""
        if self.config.max_steps:
            return self.config.max_steps
        return sum(len(self.plan(e)) for e in range(self.config.epochs))

    def autocast(self) -> Any:
        if not self.config.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    # -- the run -------------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        threads = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            return self._run()
        finally:
            torch.set_num_threads(threads)
            dist_.teardown(self.world)

    def _run(self) -> TrainResult:
        c = self.config
        seed_everything(c.seed)
        resume_from = C.latest(self.output) if c.resume else None
        if c.resume and resume_from is None and self.world.main:
            logger.warning("--resume: no checkpoint in %s; starting from the beginning", C.checkpoint_dir(self.output))
        s: Setup = build_setup(c, self.device, resume_from)
        self.setup, self.model, self.objective = s, s.model, s.objective
        self.train_data: Encoded = s.encode(read_rows(c.train), c.train, fit=True)
        self.eval_data: Encoded | None = s.encode(read_rows(c.eval), c.eval, fit=False) if c.eval else None
        s.load_model(resume_from)
        self.model = s.model
        # only sequence-classification reads the trunk's pooler; the others leave it without gradients
        every_parameter = isinstance(s.objective, SequenceClassification)
        self.step_module = dist_.wrap(s.step_module(), self.world, self.device, fsdp=c.fsdp, unused=not every_parameter)
        optimizer = make_optimizer(s.model, c)
        total = self.total_steps()
        warmup = c.warmup_steps if c.warmup_steps is not None else math.ceil(total * c.warmup_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(warmup, total))
        state: dict[str, Any] = {"step": 0, "epoch": 0, "group": 0, "best": None, "best_step": None, "bad_evals": 0,
                                 "history": []}
        if resume_from is not None:
            saved = C.load_state(resume_from)
            if saved["optimizer"] is None:
                raise InputError(f"{resume_from} was written by an --fsdp run, whose checkpoints hold the model "
                                 "only; start a new run from its model/ folder (--model) instead of --resume")
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            state.update(saved["position"])
            rng = saved["rng"]
            C.set_rng_bytes(rng[self.world.rank] if self.world.rank < len(rng) else rng[0])
            if self.world.main:
                logger.info("resuming from %s at step %d", resume_from, state["step"])
        self._write_args()
        stopped = self._loop(optimizer, scheduler, state, total)
        metrics = state["history"][-1] if state["history"] and "eval" in state["history"][-1] else {}
        self._finish()
        result = TrainResult(self.output, state["step"], state["history"], metrics.get("eval", {}),
                             {"step": state["best_step"], "value": state["best"], "metric": s.metric}
                             if state["best_step"] is not None else None, stopped)
        if self.world.main:
            from bertzoo._fs import atomic_write_text

            atomic_write_text(self.output / "train_results.json", json.dumps(
                {"steps": result.steps, "metrics": result.metrics, "best": result.best, "stopped_early": stopped,
                 "history": result.history}, indent=2) + "\n")
        return result

    def _loop(self, optimizer: torch.optim.Optimizer, scheduler: Any, state: dict[str, Any], total: int) -> bool:
        c = self.config
        bar = self._progress(total, state["step"])
        try:
            epoch = state["epoch"]
            while c.max_steps or epoch < c.epochs:  # max_steps overrides epochs, as in transformers
                groups = self.plan(epoch)
                start = state["group"] if epoch == state["epoch"] else 0
                for index in range(start, len(groups)):
                    loss = self._step(groups[index], optimizer, scheduler)
                    state.update(step=state["step"] + 1, epoch=epoch, group=index + 1)
                    entry = {"step": state["step"], "epoch": epoch, "loss": loss, "lr": scheduler.get_last_lr()[0]}
                    state["history"].append(entry)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{entry['lr']:.2e}")
                    elif self.world.main and state["step"] % c.log_steps == 0:
                        logger.info("step %d/%d loss %.4f lr %.2e", state["step"], total, loss, entry["lr"])
                    last = index == len(groups) - 1
                    finished = state["step"] >= total
                    if self._after_step(state, entry, optimizer, scheduler, epoch_end=last, final=finished):
                        return True
                    if finished:
                        return False
                state.update(epoch=epoch + 1, group=0)
                epoch += 1
        finally:
            if bar is not None:
                bar.close()
        return False

    def _step(self, group: list[list[int]], optimizer: torch.optim.Optimizer, scheduler: Any) -> float:
        """One optimizer step over the global micro-batches of ``group``; returns its mean loss."""
        obj, data, world = self.objective, self.train_data, self.world
        count = sum(obj.count(data, rows) for rows in group)  # items of the whole step, every process
        self.step_module.train()
        local = torch.zeros((), dtype=torch.float64, device=self.device)
        for k, rows in enumerate(group):
            mine = shard(rows, world.rank, world.size)
            scale = 1.0
            if not mine:  # fewer rows than processes: run one row with no weight, collectives stay in step
                mine, scale = [rows[0]], 0.0
            batch = to_device(obj.collate(data, mine, packed=self.setup.packed, pad_id=self.setup.pad_id), self.device)
            sync = k == len(group) - 1 or not world.distributed or self.config.fsdp
            context = contextlib.nullcontext() if sync else self.step_module.no_sync()  # type: ignore[operator]
            with context:
                with self.autocast():
                    loss_sum = self.step_module(batch) * scale
                (loss_sum * (world.size / max(count, 1))).backward()
            local += loss_sum.detach().double()
        if self.config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.step_module.parameters(), self.config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        (total,) = dist_.all_sum([float(local)], self.device)
        return total / max(count, 1)

    def _after_step(self, state: dict[str, Any], entry: dict[str, Any], optimizer: Any, scheduler: Any, *,
                    epoch_end: bool, final: bool) -> bool:
        """Evaluate and checkpoint when due; True = stop early."""
        c = self.config
        step = state["step"]
        due_eval = self.eval_data is not None and (
            (c.eval_steps and step % c.eval_steps == 0) or (c.eval_steps is None and epoch_end) or final)
        stop = False
        if due_eval:
            assert self.eval_data is not None
            s = self.setup
            result = evaluate(self.objective, self.step_module, self.eval_data, device=self.device, packed=s.packed,
                              pad_id=s.pad_id, batch_size=c.batch_size, autocast=self.autocast)
            entry["eval"] = result
            if self.world.main:
                logger.info("step %d eval %s", step, " ".join(f"{k} {v:.4f}" for k, v in result.items()))
            value = result.get(s.metric)
            if value is not None and improved(s.metric, value, state["best"]):
                state.update(best=value, best_step=step, bad_evals=0)
            else:
                state["bad_evals"] += 1
                stop = c.early_stopping is not None and state["bad_evals"] >= c.early_stopping
            stop = dist_.broadcast_flag(stop, self.world, self.device)
        due_save = (c.save_steps and step % c.save_steps == 0) or (c.save_steps is None and epoch_end) or final or stop
        if due_save:
            self._checkpoint(state, optimizer, scheduler)
        return stop

    # -- writing -------------------------------------------------------------------------------------
    def _model_to_save(self) -> nn.Module | None:
        """The model whole on rank 0 (FSDP: gathered, a collective every process joins)."""
        if self.config.fsdp:
            return dist_.full_model(self.step_module, self.setup.model, self.world)
        return self.setup.model if self.world.main else None

    def _checkpoint(self, state: dict[str, Any], optimizer: Any, scheduler: Any) -> None:
        model = self._model_to_save()
        rng = [C.rng_bytes()]
        if self.world.distributed:
            import torch.distributed as dist

            gathered: list[Any] = [None] * self.world.size
            dist.all_gather_object(gathered, rng[0])
            rng = gathered
        if self.world.main:
            position = {k: state[k] for k in ("step", "epoch", "group", "best", "best_step", "bad_evals", "history")}
            # FSDP shards the optimizer state across processes: its checkpoints hold the model only
            trainer_state = {"optimizer": None if self.config.fsdp else optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "rng": rng, "position": position}
            summary = {k: state[k] for k in ("step", "epoch", "group", "best", "best_step")}
            C.save(self.output, state["step"], write_model=lambda folder: self.setup.write_model(folder, model),
                   trainer_state=trainer_state, summary=summary)
            if state["best_step"] is not None:
                C.record_best(self.output, state["best_step"], self.setup.metric, state["best"])
            C.prune(self.output, self.config.keep_checkpoints)
        dist_.barrier(self.world)

    def _finish(self) -> None:
        """The final model into ``output/``: written whole next to it, then each file renamed in."""
        model = self._model_to_save()
        if self.world.main:
            staging = C.checkpoint_dir(self.output) / ".final"
            shutil.rmtree(staging, ignore_errors=True)
            self.setup.write_model(staging, model)
            for stale in self.output.glob("model*.safetensors*"):
                if not (staging / stale.name).exists():
                    stale.unlink()
            for entry in staging.iterdir():
                target = self.output / entry.name
                if target.is_dir() and entry.is_dir():
                    shutil.rmtree(target)
                os.replace(entry, target)
            shutil.rmtree(staging, ignore_errors=True)
        dist_.barrier(self.world)

    def _write_args(self) -> None:
        if self.world.main:
            from bertzoo._fs import atomic_write_text

            self.output.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.output / "training_args.json", json.dumps(self.config.to_dict(), indent=2) + "\n")

    def _progress(self, total: int, done: int) -> Any:
        if not (self.config.progress and self.world.main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=done, desc="train", unit="step", dynamic_ncols=True)


def run(config: TrainConfig) -> TrainResult:
    """Train as ``config`` says; see :class:`Trainer`.

    Raises:
        InputError: bad options or data.
    """
    if not isinstance(config, TrainConfig):
        raise InputError(f"run() takes a TrainConfig, got {type(config).__name__}")
    return Trainer(config).run()


__all__ = ["TrainResult", "Trainer", "linear_schedule", "make_optimizer", "no_decay", "run", "seed_everything"]
