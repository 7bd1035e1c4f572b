"""A competing process for ``--load``: what a busy machine looks like to the contenders being timed.

- ``embed``: a second ``bertzoo.embed`` job (the same model, corpus paragraphs, 2 torch threads)
  looping in a subprocess;
- ``matmul``: a two-thread fp32 matmul loop (``1024 × 1024``) in a subprocess.

The subprocess starts before the timed runs, signals when its first iteration is done, and is
terminated (by its own pid) when the block ends. The load average is printed at both ends.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

LOADS = ("embed", "matmul")

_EMBED = """
import sys
sys.path.insert(0, {bench!r})
import torch
torch.set_num_threads(2)
import bertzoo
from corpus import load_corpus
texts = load_corpus(400)
first = True
while True:
    bertzoo.embed(texts, model={model!r}, progress=False)
    if first:
        print("ready", flush=True)
        first = False
"""

_MATMUL = """
import torch
torch.set_num_threads(2)
a = torch.randn(1024, 1024)
first = True
while True:
    for _ in range(20):
        a = torch.tanh(a @ a.T * 0.03)
    if first:
        print("ready", flush=True)
        first = False
"""


@contextlib.contextmanager
def competing_load(kind: str | None, model: str) -> Iterator[str]:
    """Run the ``kind`` load (``None``: nothing) for the duration of the block; yields its description."""
    if kind is None:
        yield "none"
        return
    if kind not in LOADS:
        raise SystemExit(f"--load {kind!r}: choose from {', '.join(LOADS)}")
    code = _EMBED.format(bench=str(Path(__file__).resolve().parent), model=model) if kind == "embed" else _MATMUL
    env = {**os.environ, "OMP_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if "ready" not in line:
            raise SystemExit(f"the --load {kind} process did not start (exit {proc.poll()})")
        what = ("a second bertzoo.embed job (400 paragraphs per loop, 2 threads)" if kind == "embed"
                else "a two-thread 1024x1024 fp32 matmul loop")
        print(f"load: {what}, pid {proc.pid}; load average {os.getloadavg()[0]:.2f}", flush=True)
        yield what
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
