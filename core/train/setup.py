"""Everything a run needs before its first step: the model folder, tokenizer, objective and model.

The objective is picked by head name: the four recipes of :mod:`bertzoo.train.tasks`, or any
registered head whose ``task`` metadata one of them trains (a plugin's head trains with no
change here). The model comes from :func:`bertzoo.from_pretrained` with the head and the labels
the training data implies; a resumed run loads the checkpoint's model folder instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bertzoo.errors import InputError
from bertzoo.train.config import TrainConfig
from bertzoo.train.data import Encoded
from bertzoo.train.tasks import OBJECTIVE_CLASSES, TASK_OBJECTIVES, Objective, StepModule, trunk_of

# tokenizer files copied next to every saved model, so the folder loads (and tokenizes) anywhere
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
                   "added_tokens.json", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spiece.model")


def pick_objective(head: str, config: TrainConfig) -> tuple[Objective, str]:
    """The objective that trains ``head`` and the registered head name to load."""
    if head in OBJECTIVE_CLASSES:
        objective = OBJECTIVE_CLASSES[head](config)
        return objective, objective.head
    from bertzoo.discovery import get_registry

    record = get_registry().get("head", head)  # unknown names raise with close matches
    tasks = record.metadata.get("task") or ()
    for task in (tasks,) if isinstance(tasks, str) else tasks:
        if task in TASK_OBJECTIVES:
            return OBJECTIVE_CLASSES[TASK_OBJECTIVES[task]](config), record.full_name
    raise InputError(
        f"head {record.full_name!r} serves no task bertzoo train knows how to train (it declares "
        f"{tasks or 'none'}); train one of {', '.join(OBJECTIVE_CLASSES)}, or a head registered with task="
        f"{', '.join(repr(t) for t in TASK_OBJECTIVES)}"
    )


class Setup:
    """The model folder, tokenizer and objective of a run; then the model (:meth:`load_model`)."""

    def __init__(self, config: TrainConfig, device: torch.device, resume_from: Path | None) -> None:
        from bertzoo.checkpoint import read_sentence_transformers_info
        from bertzoo.checkpoint.default_model import resolve_model
        from bertzoo.inference.tokenizer import Tokenizer

        self.config = config
        self.device = device
        self.folder = resolve_model(config.model)
        st_info = read_sentence_transformers_info(self.folder)
        self.tokenizer_folder = st_info.transformer_path if st_info is not None else self.folder
        self.tokenizer = Tokenizer.from_folder(self.tokenizer_folder, max_length=config.max_length)
        self.pad_id = self.tokenizer.pad_id
        self.objective, self.head = pick_objective(config.head, config)
        self.objective.checkpoint_labels = _checkpoint_labels(self.tokenizer_folder, self.head)
        self.model: nn.Module = nn.Module()
        self.packed = False

    @property
    def metric(self) -> str:
        return self.config.metric or self.objective.metric

    def encode(self, rows: list[dict[str, Any]], source: str, *, fit: bool) -> Encoded:
        return self.objective.encode(self.tokenizer, rows, source, fit=fit)

    def load_model(self, resume_from: Path | None) -> None:
        """Load the model to train: the base model with the data's labels, or a checkpoint's model."""
        from bertzoo.pretrained import from_pretrained

        c = self.config
        if resume_from is not None:  # its config.json holds the labels; passing them again would re-initialise
            model = from_pretrained(resume_from / "model", head=self.head, attention=c.attention, device=self.device)
        else:
            model = from_pretrained(self.folder, head=self.head, attention=c.attention, device=self.device,
                                    **{**self.objective.head_options(), **c.extra})
        trunk = trunk_of(model)
        trunk.validate_inputs = False  # ids come from our tokenizer: skip the per-batch host sync
        if not c.packed:
            trunk.pack_inputs = False  # --no-packed: padded all the way (the trunk would pack a padded batch itself)
        self.packed = bool(c.packed and trunk.can_pack() and getattr(type(model), "packed_tasks", True))
        model.train()
        self.model = model

    def step_module(self) -> StepModule:
        return StepModule(self.model, self.objective)

    def write_model(self, folder: Path, model: nn.Module | None = None) -> None:
        """``save_pretrained`` of ``model`` (default the one trained) plus the tokenizer files (and
        sentence-transformers' max length)."""
        from bertzoo.checkpoint.save import save_pretrained

        save_pretrained(self.model if model is None else model, folder)
        for name in TOKENIZER_FILES:
            source = self.tokenizer_folder / name
            if source.is_file():
                shutil.copy2(source, folder / name)
        if (folder / "modules.json").is_file():
            import json

            (folder / "sentence_bert_config.json").write_text(
                json.dumps({"max_seq_length": self.tokenizer.max_length, "do_lower_case": False}) + "\n",
                encoding="utf-8")


def _checkpoint_labels(folder: Path, head: str) -> dict[int, str] | None:
    """``id2label`` of a checkpoint saved with a head of the same kind, else None."""
    import json

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    architectures = config.get("architectures") or []
    kind = {"sequence-classification": "SequenceClassification", "token-classification": "TokenClassification"}
    wanted = kind.get(head.rpartition(":")[2])
    if not config.get("id2label") or wanted is None or not any(wanted in str(a) for a in architectures):
        return None
    return {int(k): str(v) for k, v in config["id2label"].items()}


def build_setup(config: TrainConfig, device: torch.device, resume_from: Path | None) -> Setup:
    return Setup(config, device, resume_from)


__all__ = ["TOKENIZER_FILES", "Setup", "build_setup", "pick_objective"]
