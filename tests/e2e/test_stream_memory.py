"""Sharded ``bertzoo embed`` keeps memory bounded: peak RSS does not grow with the input.

Each run is a fresh interpreter running the CLI on N short lines (tiny random model, one thread)
and reporting its peak resident set (``VmHWM`` in /proc/self/status). The sharded run on 10x the
lines must peak within 16 MB of the small one, while the whole-file ``.npy`` mode, which holds
every text and vector, grows by more than eight times that on the same input: the comparison that
shows the test can fail. benchmarks/stream_memory.py runs the same measurement at 1 M lines on MiniLM.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc (Linux)"),
]

SMALL, LARGE = 20_000, 200_000
CHILD = """
import sys
import bertzoo.cli
code = bertzoo.cli.main(sys.argv[1:])
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("PEAK_KB", int(peak.split()[1]), "EXIT", code)
"""


def short_lines(path: Path, n: int) -> Path:
    rng = random.Random(n)
    words = ["search", "index", "vector", "query", "paragraph", "model", "token", "shard", "resume", "memory"]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(" ".join(rng.choices(words, k=rng.randint(3, 12))) + f" {i}\n")
    return path


def peak_kb(model: Path, source: Path, output: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTZOO_")}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, "embed", "--input", str(source), "--output", output, "--model", str(model),
         "--threads", "1", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert proc.returncode == 0 and "EXIT 0" in proc.stdout, proc.stderr
    return int(proc.stdout.split("PEAK_KB")[1].split()[0])


def test_peak_rss_does_not_grow_with_the_input(tiny_bert: Path, tmp_path: Path) -> None:
    small = short_lines(tmp_path / "small.txt", SMALL)
    large = short_lines(tmp_path / "large.txt", LARGE)
    stream_small = peak_kb(tiny_bert, small, f"{tmp_path / 'small'}/")
    stream_large = peak_kb(tiny_bert, large, f"{tmp_path / 'large'}/")
    whole_file = peak_kb(tiny_bert, large, str(tmp_path / "large.npy"))
    growth, whole_growth = stream_large - stream_small, whole_file - stream_small
    print(f"peak RSS: sharded {SMALL:,} lines {stream_small / 1024:.0f} MB, {LARGE:,} lines "
          f"{stream_large / 1024:.0f} MB; whole-file .npy {LARGE:,} lines {whole_file / 1024:.0f} MB")
    # measured: +5 MB, against +500 MB for the whole-file mode (and +100 MB sharded before
    # bertzoo.plugins.eager capped oneDNN's per-shape caches)
    assert growth < 16 * 1024, f"sharded peak grew by {growth / 1024:.1f} MB for {LARGE // SMALL}x the lines"
    assert whole_growth > 8 * 16 * 1024, "the whole-file mode should grow: is the measurement broken?"
