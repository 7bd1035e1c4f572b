"""Training checkpoints: written atomically, the last K kept plus the best, and resumed exactly.

Layout, under ``OUTPUT/checkpoints/``::

    step-00000120/            one checkpoint (a folder swapped into place by bertzoo._fs.atomic_folder)
        model/                a save_pretrained folder, tokenizer files included (loads anywhere)
        trainer_state.pt      optimizer, scheduler, RNG states of every process, data position
        state.json            step, epoch, position, metrics (readable without torch)
    best.json                 which step holds the best evaluation so far

A resumed run loads ``model/`` with the same head, then the optimizer and scheduler states, puts
back each process's RNG states and continues at the recorded ``(epoch, micro-batch)``: the data
plan is a function of the seed and the epoch, so the rest of the run is the uninterrupted one.
"""

from __future__ import annotations

import io
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bertzoo._fs import atomic_folder, atomic_write_text
from bertzoo.errors import CheckpointError

STATE_FILE = "trainer_state.pt"
PREFIX = "step-"


def rng_state() -> dict[str, Any]:
    """This process's random states: Python, numpy, torch CPU and CUDA."""
    return {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def rng_bytes() -> bytes:
    """:func:`rng_state` serialised (what processes exchange: plain bytes pickle across ranks safely)."""
    buffer = io.BytesIO()
    torch.save(rng_state(), buffer)
    return buffer.getvalue()


def set_rng_bytes(data: bytes) -> None:
    set_rng_state(torch.load(io.BytesIO(data), weights_only=True))


def _numpy_state() -> tuple[Any, ...]:
    # as tensors and numbers, so torch.load(weights_only=True) reads it back
    name, keys, *rest = np.random.get_state()
    return (name, torch.from_numpy(np.array(keys)), *rest)


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dir(output: str | Path) -> Path:
    return Path(output) / "checkpoints"


def list_checkpoints(output: str | Path) -> list[Path]:
    """Finished checkpoints, oldest first (temporaries of a killed save are skipped)."""
    root = checkpoint_dir(output)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


def save(output: str | Path, step: int, *, write_model: Any, trainer_state: dict[str, Any],
         summary: dict[str, Any]) -> Path:
    """Write checkpoint ``step`` atomically; ``write_model(folder)`` writes the model folder."""
    target = checkpoint_dir(output) / f"{PREFIX}{step:08d}"
    with atomic_folder(target) as tmp:
        write_model(tmp / "model")
        buffer = io.BytesIO()
        torch.save(trainer_state, buffer)
        (tmp / STATE_FILE).write_bytes(buffer.getvalue())
        (tmp / "state.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return target


def record_best(output: str | Path, step: int, metric: str, value: float) -> None:
    atomic_write_text(checkpoint_dir(output) / "best.json",
                      json.dumps({"step": step, "metric": metric, "value": value}) + "\n")


def best_step(output: str | Path) -> int | None:
    path = checkpoint_dir(output) / "best.json"
    if not path.is_file():
        return None
    return int(json.loads(path.read_text(encoding="utf-8"))["step"])


def prune(output: str | Path, keep: int) -> list[Path]:
    """Delete all but the last ``keep`` checkpoints and the best one; returns the deleted folders."""
    found = list_checkpoints(output)
    best = best_step(output)
    keep_names = {p.name for p in found[-keep:]} | ({f"{PREFIX}{best:08d}"} if best is not None else set())
    removed = [p for p in found if p.name not in keep_names]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return removed


def latest(output: str | Path) -> Path | None:
    found = list_checkpoints(output)
    return found[-1] if found else None


def load_state(folder: Path) -> dict[str, Any]:
    """The trainer state of checkpoint ``folder``.

    Raises:
        CheckpointError: the file is missing or unreadable.
    """
    path = folder / STATE_FILE
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}; delete this checkpoint to resume from the previous one") from exc
    return state


__all__ = ["rng_bytes", "set_rng_bytes", "best_step", "checkpoint_dir", "latest", "list_checkpoints", "load_state", "prune", "record_best",
           "rng_state", "save", "set_rng_state"]
