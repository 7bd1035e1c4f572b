"""Peak RSS of sharded ``bertzoo embed`` as the input grows (the default model, short lines).

    python benchmarks/stream_memory.py --lines 10000 1000000 [--threads 1] [--model PATH]

Each size runs in a fresh interpreter (``bertzoo embed --input FILE --output DIR/``) that reports
its peak resident set (``VmHWM``, /proc/self/status) and wall time; the lines are short
(3 to 12 words), so the run is dominated by per-batch work, not by the model. Linux only.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import sys
import bertzoo.cli
code = bertzoo.cli.main(sys.argv[1:])
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("PEAK_KB", int(peak.split()[1]), "EXIT", code)
"""
WORDS = ["search", "index", "vector", "query", "paragraph", "model", "token", "shard", "resume", "memory",
         "the", "of", "a", "retrieval", "corpus", "embedding", "score", "rank", "document", "answer"]


def write_lines(path: Path, n: int) -> None:
    rng = random.Random(n)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) + f" {i}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--model", default=None, help="model folder (default all-MiniLM-L6-v2)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.lines:
            source = Path(tmp) / f"lines-{n}.txt"
            write_lines(source, n)
            cmd = [sys.executable, "-c", CHILD, "embed", "--input", str(source), "--output", f"{tmp}/out-{n}/",
                   "--no-progress"]
            cmd += ["--model", args.model] if args.model else []
            cmd += ["--threads", str(args.threads)] if args.threads else []
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - t0
            if proc.returncode != 0 or "EXIT 0" not in proc.stdout:
                sys.exit(f"run on {n:,} lines failed:\n{proc.stderr}")
            peak = int(proc.stdout.split("PEAK_KB")[1].split()[0])
            print(f"{n:>10,} lines  peak RSS {peak / 1024:7.1f} MB  {seconds:7.1f} s  {n / seconds:8,.0f} texts/s "
                  "(model load included)", flush=True)


if __name__ == "__main__":
    main()
