"""Timing helpers shared by the benchmark scripts.

This machine's speed drifts by 2–3x over minutes (shared cores, frequency scaling), so numbers
from different runs are not comparable. Every helper here measures contenders in the same run,
interleaved (A B A B … rather than A A A B B B), on the same inputs, and keeps the best of several
runs; report ratios from one call, never absolute numbers from two.

- ``alternate``: throughput of in-process callables, interleaved, best of N.
- ``cold_start`` / ``alternate_cold``: wall time and peak RSS of a snippet in a fresh Python
  process (import + load + first result), several runs.
- ``markdown_table``: the tables the scripts print and docs/benchmarks.md holds.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

_MARK = "__BENCH_RESULT__"


@dataclass
class Timing:
    """Seconds per run of one contender; ``result`` is the return value of its last run."""

    name: str
    seconds: list[float] = field(default_factory=list)
    result: Any = None

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def spread(self) -> float:
        """Slowest over fastest run: how noisy the machine was for this contender."""
        return max(self.seconds) / min(self.seconds)


def alternate(
    contenders: dict[str, Callable[[], Any]],
    repeats: int = 3,
    warmup: int = 1,
    log: Callable[[str], None] | None = None,
) -> dict[str, Timing]:
    """Time each zero-argument callable ``repeats`` times, interleaved.

    Rounds alternate direction (A B C, C B A, A B C, …) so no contender always runs right after
    the same neighbour. Warm-up calls (not timed) run first, also interleaved.

    Args:
        contenders: name -> callable doing one full unit of work (e.g. embed the whole corpus).
        repeats: timed runs per contender; report ``Timing.best``.
        warmup: untimed runs per contender before timing.
        log: called with a one-line message after each run (e.g. ``print``).

    Returns:
        name -> ``Timing``, in the order given.
    """
    names = list(contenders)
    timings = {name: Timing(name) for name in names}
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            gc.collect()
            t0 = time.perf_counter()
            result = contenders[name]()
            dt = time.perf_counter() - t0
            timings[name].seconds.append(dt)
            timings[name].result = result
            if log:
                log(f"  run {r + 1}/{repeats} {name}: {dt:.3f}s")
    return timings


def ratios(timings: dict[str, Timing], baseline: str) -> dict[str, float]:
    """Speed-up of each contender over ``baseline`` (best time over best time; >1 is faster)."""
    base = timings[baseline].best
    return {name: base / t.best for name, t in timings.items()}


@dataclass
class ColdStart:
    """Fresh-process runs of one snippet.

    Attributes:
        wall_s: per run, seconds from spawning the interpreter to its exit (what a user waits).
        in_process_s: per run, seconds from the first line of the snippet to its end (no
            interpreter start-up).
        peak_rss_mb: per run, the child's peak resident set size (VmHWM) in MiB.
    """

    name: str
    wall_s: list[float] = field(default_factory=list)
    in_process_s: list[float] = field(default_factory=list)
    peak_rss_mb: list[float] = field(default_factory=list)

    @property
    def best_wall(self) -> float:
        return min(self.wall_s)

    @property
    def median_wall(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def median_rss(self) -> float:
        return statistics.median(self.peak_rss_mb)


_WRAPPER = """
import time as _bench_time
_bench_t0 = _bench_time.perf_counter()
{snippet}
_bench_dt = _bench_time.perf_counter() - _bench_t0

def _bench_peak_rss_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource, sys
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)  # bytes on macOS, kB on Linux

import json as _bench_json
print({mark!r} + _bench_json.dumps({{"seconds": _bench_dt, "peak_rss_mb": _bench_peak_rss_mb()}}), flush=True)
"""


def run_fresh(snippet: str, env: dict[str, str] | None = None, timeout: float = 600) -> tuple[float, float, float]:
    """Run ``snippet`` in a fresh interpreter; return ``(wall_s, in_process_s, peak_rss_mb)``.

    Raises:
        RuntimeError: the child failed (its stderr tail is in the message).
    """
    code = _WRAPPER.format(snippet=textwrap.dedent(snippet), mark=_MARK)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    wall = time.perf_counter() - t0
    line = next((x for x in proc.stdout.splitlines() if x.startswith(_MARK)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"cold-start snippet failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    data = json.loads(line[len(_MARK):])
    return wall, float(data["seconds"]), float(data["peak_rss_mb"])


def cold_start(name: str, snippet: str, runs: int = 5, env: dict[str, str] | None = None) -> ColdStart:
    """Run ``snippet`` ``runs`` times, each in a fresh interpreter."""
    return alternate_cold({name: snippet}, runs=runs, env=env)[name]


def alternate_cold(
    snippets: dict[str, str],
    runs: int = 5,
    env: dict[str, str] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, ColdStart]:
    """Cold starts of several snippets, interleaved (A B A B …), each run in a fresh interpreter.

    One untimed run of each comes first so every contender finds its files in the page cache:
    "cold" here means a cold process, not a cold disk.
    """
    names = list(snippets)
    out = {name: ColdStart(name) for name in names}
    for name in names:
        run_fresh(snippets[name], env)
    for r in range(runs):
        for name in names if r % 2 == 0 else names[::-1]:
            wall, inside, rss = run_fresh(snippets[name], env)
            out[name].wall_s.append(wall)
            out[name].in_process_s.append(inside)
            out[name].peak_rss_mb.append(rss)
            if log:
                log(f"  cold {r + 1}/{runs} {name}: {wall:.2f}s wall, {rss:.0f} MiB peak")
    return out


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; floats are printed as given (format them first)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_note() -> str:
    """One line describing where the numbers came from."""
    import platform

    try:
        import torch

        threads = f", torch {torch.__version__} with {torch.get_num_threads()} threads"
    except ImportError:
        threads = ""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}{threads}"
