"""Corpus embedding on Ray Data vs the local engine, in one run: throughput and actor start-up.

Contenders, each writing the same shard folder for the same input (the committed benchmark
paragraphs, ``benchmarks/data/``) with the same model (all-MiniLM-L6-v2 unless ``--model``):

- ``local 1 thread`` / ``local N threads``: ``bertzoo embed --output DIR/`` in this process.
- ``ray 1 actor`` / ``ray 2 actors``: ``bertzoo embed --engine ray`` on a local cluster started
  once (its start-up is reported apart), actors of 1 CPU each, reads on the cluster.

They run interleaved (A B C D, D C B A, ...), best of ``--repeats``. Every Ray run starts its
actors afresh (Ray Data does), so a Ray run's wall time holds one actor start-up; the start-up of
one actor (a worker process importing torch and loading the model, measured alone with
``ray.remote``) is printed separately, and "after start-up" rows/s subtract it. The folders are
compared: Ray's vectors must equal the local 1-thread run's.

    python benchmarks/ray_embed.py --quick     # 1,000 paragraphs, one round (a few minutes here)
    python benchmarks/ray_embed.py             # 4,000 paragraphs, best of 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import alternate, machine_note, markdown_table  # noqa: E402
from corpus import load_corpus  # noqa: E402

from bertzoo.corpus import InputSource, embed_to_folder, load_folder  # noqa: E402


def actor_startup(model: str | None, runs: int) -> list[float]:
    """Seconds from asking Ray for one 1-CPU embed actor to its first result (best effort: fresh workers)."""
    import ray

    from bertzoo.corpus.stream import StreamOptions
    from bertzoo.integrations.ray import EmbedActor, _driver_fingerprint

    remote = ray.remote(num_cpus=1)(EmbedActor)
    seconds = []
    for _ in range(runs):
        t0 = time.perf_counter()
        actor = remote.remote(model, _driver_fingerprint(model), {"head": None, "compute": None, "device": None}, 1,
                              StreamOptions(), "text", "embedding")
        ray.get(actor.__call__.remote({"text": np.array(["warm up"], dtype=object)}))
        seconds.append(time.perf_counter() - t0)
        ray.kill(actor)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 paragraphs, one round")
    parser.add_argument("--rows", type=int, default=None, help="paragraphs to embed (default 4,000; 1,000 quick)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 3; 1 quick)")
    parser.add_argument("--model", default=None, help="model folder or hub id (default all-MiniLM-L6-v2)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    rows = args.rows or (1_000 if args.quick else 4_000)
    repeats = args.repeats or (1 if args.quick else 3)
    shard, chunk = 500, 256

    import ray

    from bertzoo.integrations.ray_corpus import RayOptions, embed_to_folder_ray

    work = Path(tempfile.mkdtemp(prefix="bertzoo-ray-bench-"))
    source = work / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in load_corpus(rows)), encoding="utf-8")
    cpus = os.cpu_count() or 1
    counter = iter(range(10_000))

    def folder(name: str) -> Path:
        return work / f"{name}-{next(counter)}"

    def local(threads: int) -> Path:
        out = folder(f"local{threads}")
        embed_to_folder(InputSource.from_path(str(source)), out, args.model, shard_size=shard, chunk_size=chunk,
                        threads=threads)
        return out

    def on_ray(actors: int) -> Path:
        out = folder(f"ray{actors}")
        embed_to_folder_ray(str(source), out, args.model, shard_size=shard, chunk_size=chunk, threads=1,
                            ray_options=RayOptions(actors=actors))
        return out

    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING")
    cluster_start = time.perf_counter() - t0
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        startup = actor_startup(args.model, runs=2 if args.quick else 3)
        contenders = {"local 1 thread": lambda: local(1), f"local {cpus} threads": lambda: local(cpus),
                      "ray 1 actor": lambda: on_ray(1), "ray 2 actors": lambda: on_ray(2)}
        timings = alternate(contenders, repeats=repeats, warmup=0, log=print)
    finally:
        ray.shutdown()
    reference = load_folder(timings["local 1 thread"].result)[0]
    equal = {name: bool(np.array_equal(load_folder(t.result)[0], reference)) for name, t in timings.items()}
    best_startup = min(startup)
    table = []
    base = timings["local 1 thread"].best
    for name, t in timings.items():
        after = rows / max(t.best - best_startup, 1e-9) if name.startswith("ray") else rows / t.best
        table.append([name, f"{t.best:.1f}", f"{rows / t.best:,.0f}", f"{after:,.0f}", f"{base / t.best:.2f}x",
                      "yes" if equal[name] else "NO"])
    print(f"\n{rows:,} paragraphs, shards of {shard}, chunks of {chunk}; {machine_note()}")
    print(f"local Ray cluster start-up: {cluster_start:.1f} s; one actor's start-up (process, imports, model): "
          + ", ".join(f"{s:.1f}" for s in startup) + " s\n")
    print(markdown_table(["engine", "best s", "rows/s", "rows/s after start-up", "vs local 1 thread",
                          "vectors equal local 1 thread"], table))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "cluster_start_s": cluster_start, "actor_start_s": startup,
                                         "seconds": {n: t.seconds for n, t in timings.items()}, "equal": equal},
                                        indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
