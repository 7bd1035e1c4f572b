"""``bertzoo embed --output DIR/ --resume`` survives being killed at any moment.

A real ``bertzoo embed`` subprocess (tiny random model in a tmp dir, 12,000 lines, 24 shards) is
killed with SIGKILL or SIGINT at random points: while it starts, while it scans the input, in
the middle of a shard, right after a shard. After each kill the folder is checked (every file
under its final name is complete, the manifest lists whole shards only, its lock is free), then
the same command with ``--resume`` continues; a resume is itself killed again. The finished folder must equal an
uninterrupted run's byte for byte, manifest included apart from its ``timing`` field.

``BERTZOO_TEST_KILLS=N`` raises the number of kill points of the random chain (default 8).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bertzoo.corpus.lock import LOCK_NAME, FolderLock

pytestmark = pytest.mark.slow

N_LINES, SHARD, CHUNK = 12_000, 500, 100
KILLS = int(os.environ.get("BERTZOO_TEST_KILLS", "8"))


def command(model: Path, source: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bertzoo.cli", "embed", "--input", str(source), "--output", f"{out}/",
            "--model", str(model), "--shard-size", str(SHARD), "--chunk-size", str(CHUNK), "--threads", "1",
            "--no-progress", *extra]


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("BERTZOO_")}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resume")
    model = tiny_bert
    rng = random.Random(0)
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven", "wizards"]
    lines = [" ".join(rng.choices(words, k=rng.choice([3, 8, 15, 40]))) + f" {i}" for i in range(N_LINES)]
    source = root / "in.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    reference = root / "reference"
    proc = subprocess.run(command(model, source, reference), capture_output=True, text=True, env=environment(),
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "texts truncated at 32 tokens" in proc.stderr
    return {"model": model, "source": source, "reference": reference}


def manifest_rows(out: Path) -> int:
    try:
        return int(json.loads((out / "manifest.json").read_text())["rows_done"])
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet (the rename is atomic)
        return -1


def kill(proc: subprocess.Popen[str], out: Path, sig: int, *, rows: int | None, delay: float) -> None:
    """Wait until the manifest reports ``rows`` done (None: don't wait), then ``delay`` s, then ``sig``."""
    while rows is not None and proc.poll() is None and manifest_rows(out) < rows:
        time.sleep(0.005)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.communicate(timeout=120)


def check_folder(out: Path, sig: int) -> int:
    """Every visible file is complete; the manifest lists whole, contiguous shards. Returns rows done."""
    if not out.exists():
        return 0
    names = sorted(p.name for p in out.iterdir())
    # a SIGKILLed run leaves its lock file (the OS dropped the lock itself); a Ctrl-C before the
    # next run took it over leaves it there too: it must be free, and the next run reuses it
    temporary = [n for n in names if n.startswith(".") and n != LOCK_NAME]
    if sig == signal.SIGINT:
        assert not temporary, names  # Ctrl-C cleans up after itself
    if LOCK_NAME in names:
        with FolderLock(out):  # free: no process holds it
            pass
    assert all(n == "manifest.json" or n.startswith("shard-") for n in names if not n.startswith(".")), names
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text()) if "manifest.json" in names else {}
    shards = manifest.get("shards", [])
    assert [s["rows"][0] for s in shards] == [i * SHARD for i in range(len(shards))]
    assert manifest.get("rows_done", 0) == sum(s["count"] for s in shards)
    for name in names:
        if name.endswith(".npy") and not name.startswith("."):
            array = np.load(out / name)  # a partial file would not load, or would be short
            index = int(name.split("-")[1].split(".")[0])
            assert len(array) == min(SHARD, N_LINES - index * SHARD), name
            assert index <= len(shards), f"{name} is more than one shard ahead of the manifest"
    return int(manifest.get("rows_done", 0))


def assert_same_as_reference(out: Path, reference: Path) -> None:
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in reference.iterdir())
    for name in names:
        if name != "manifest.json":
            assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    ours, theirs = (json.loads((d / "manifest.json").read_text()) for d in (out, reference))
    assert ours.pop("timing")["runs"] > 1
    theirs.pop("timing")
    assert ours == theirs


def run_chain(setup: dict[str, Path], out: Path, points: list[tuple[int, int | None, float]]) -> list[int]:
    """Kill at each ``(signal, rows, delay)`` in turn (each run after the first with --resume), then finish."""
    done = []
    for i, (sig, rows, delay) in enumerate(points):
        extra = ("--resume",) if i else ()
        proc = subprocess.Popen(command(setup["model"], setup["source"], out, *extra), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=environment())
        kill(proc, out, sig, rows=rows, delay=delay)
        done.append(check_folder(out, sig))
    final = subprocess.run(command(setup["model"], setup["source"], out, "--resume"), capture_output=True, text=True,
                           env=environment(), timeout=300, check=False)
    assert final.returncode == 0, final.stderr
    assert_same_as_reference(out, setup["reference"])
    return done


def test_killed_while_starting_and_scanning_then_resumed(setup: dict[str, Path], tmp_path: Path) -> None:
    # before the folder exists, while the model loads / the input is scanned (manifest with no shard), mid-shard
    points = [(signal.SIGKILL, None, 0.3), (signal.SIGINT, None, 1.5), (signal.SIGKILL, 0, 0.0),
              (signal.SIGINT, 0, 0.05)]
    run_chain(setup, tmp_path / "out", points)


def test_killed_at_random_points_then_resumed(setup: dict[str, Path], tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("BERTZOO_TEST_SEED", "1")))
    points: list[tuple[int, int | None, float]] = []
    rows = 0
    for _ in range(KILLS):  # increasing targets, so the chain moves through the whole input
        rows = min(N_LINES - SHARD, rows + rng.randrange(0, 2 * N_LINES // KILLS))
        points.append((rng.choice([signal.SIGKILL, signal.SIGINT]), rows, rng.uniform(0.0, 0.12)))
    done = run_chain(setup, tmp_path / "out", points)
    assert done == sorted(done)
    print(f"{len(points)} kill points; rows done after each kill: {done}")


def test_resume_refuses_other_options(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(setup["reference"], out)
    proc = subprocess.run(command(setup["model"], setup["source"], out, "--resume", "--dim", "16"),
                          capture_output=True, text=True, env=environment(), timeout=300, check=False)
    assert proc.returncode == 2
    assert "cannot --resume" in proc.stderr and "dim 32 vs 16" in proc.stderr
    proc = subprocess.run(command(setup["model"], setup["source"], out, "--resume"),
                          capture_output=True, text=True, env=environment(), timeout=300, check=False)
    assert proc.returncode == 0 and "already complete" in proc.stderr
