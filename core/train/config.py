"""``TrainConfig``: every option of ``bertzoo train``, one field per command-line flag.

Light on purpose (no torch): the CLI builds it from its arguments and :func:`bertzoo.train.api.train`
from keywords, so the two spellings cannot drift apart. :meth:`TrainConfig.check` turns bad values
into :class:`~bertzoo.errors.InputError` before any model is loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertzoo.errors import InputError, check_choice

# Training objectives. The first three are the registered heads' family-independent names; "rerank"
# is a cross-encoder: the sequence-classification head with one logit and a BCE loss.
OBJECTIVES = ("sequence-classification", "token-classification", "sentence-embedding", "rerank")
PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")


@dataclass
class TrainConfig:
    """What to train, on which data, and how. Field names are the CLI's flags (``--learning-rate``
    is ``learning_rate``); see docs/training.md for the recipes."""

    train: str
    output: str
    model: str | None = None  # None = the default model (all-MiniLM-L6-v2)
    head: str = "sequence-classification"
    eval: str | None = None
    text_field: str = "text"
    text_pair_field: str | None = None
    label_field: str = "label"
    problem_type: str | None = None  # sequence-classification only; None = from the labels
    epochs: int = 3
    max_steps: int | None = None  # optimizer steps; overrides epochs
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.0
    warmup_steps: int | None = None
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    batch_size: int = 32  # rows per optimizer step and process, unless batch_tokens is set
    batch_tokens: int | None = None  # real tokens per micro-batch (all processes together)
    grad_accum: int = 1
    max_length: int | None = None
    bf16: bool = False
    seed: int = 42
    eval_steps: int | None = None  # None = at the end of every epoch
    metric: str | None = None  # the metric that picks the best checkpoint; None = the objective's
    early_stopping: int | None = None  # evaluations without improvement before stopping
    save_steps: int | None = None  # None = at the end of every epoch
    keep_checkpoints: int = 2  # the last K, plus the best
    resume: bool = False
    scale: float = 20.0  # sentence-embedding: cosine similarity scale (MultipleNegativesRankingLoss)
    label_all_tokens: bool = False  # token-classification: label every word piece, not only the first
    packed: bool = True  # padding-free batches when the trunk can run them
    fsdp: bool = False
    device: str | None = None
    attention: str | None = None
    threads: int | None = None  # torch CPU threads; None = torch's own
    progress: bool = True
    log_steps: int = 50
    extra: dict[str, Any] = field(default_factory=dict)  # model overrides (from_pretrained keywords)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> TrainConfig:
        """A config from keywords; unknown names raise an :class:`InputError` listing the valid ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise InputError(
                f"train() got unknown option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(names))}"
            )
        return cls(**kwargs).check()

    def check(self) -> TrainConfig:
        """``self`` if every value makes sense, else an :class:`InputError` naming the option."""
        for name in ("train", "eval"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise InputError(f"--{name} {value!r} is not a file; give a CSV, JSON-lines or parquet file")
        if self.problem_type is not None:
            check_choice("problem_type", self.problem_type, PROBLEM_TYPES)
        positive = {"batch_size": self.batch_size, "grad_accum": self.grad_accum, "keep_checkpoints":
                    self.keep_checkpoints, "log_steps": self.log_steps}
        optional = {"max_steps": self.max_steps, "batch_tokens": self.batch_tokens, "eval_steps": self.eval_steps,
                    "save_steps": self.save_steps, "early_stopping": self.early_stopping,
                    "max_length": self.max_length}
        for name, value in {**positive, **{k: v for k, v in optional.items() if v is not None}}.items():
            if int(value) < 1:
                raise InputError(f"{name}={value} must be at least 1")
        if self.epochs <= 0 and self.max_steps is None:
            raise InputError(f"epochs={self.epochs} must be positive (or give max_steps)")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise InputError(f"warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        if self.learning_rate <= 0:
            raise InputError(f"learning_rate={self.learning_rate} must be positive")
        if self.early_stopping is not None and self.eval is None:
            raise InputError("early_stopping needs an evaluation file: give --eval FILE")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


__all__ = ["OBJECTIVES", "PROBLEM_TYPES", "TrainConfig"]
