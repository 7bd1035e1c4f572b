"""What each output precision and ``--dim`` costs in accuracy, on the benchmark corpus.

    python benchmarks/output_precision.py [--docs 2000] [--queries 300] [--model PATH]

Documents are the first ``--docs`` paragraphs of benchmarks/data/paragraphs.jsonl.gz; each query
is the first sentence of one of them (paragraphs with at least two sentences), and its own
paragraph is the right answer (a small self-retrieval task). Documents are stored as
``bertzoo embed --precision P --dim N`` stores them (:func:`bertzoo.inference.vectors.shape_vectors`);
queries stay float32 (cut to N dims and re-normalised), except for binary, where both sides are
sign bits ranked by Hamming distance, as binary indexes are searched.

Columns: bytes per stored vector; cosine of each restored document vector to its float32 vector
at the same ``dim`` (mean and min: what the precision alone loses); overlap@10, the share of the
float32 384-dim top 10 that the variant's top 10 keeps (mean over queries); recall@1, the share of
queries whose own paragraph ranks first.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

import numpy as np
import torch

from bertzoo.inference.pipeline import Pipeline
from bertzoo.inference.vectors import restore_vectors, shape_vectors

CORPUS = Path(__file__).resolve().parent / "data" / "paragraphs.jsonl.gz"
VARIANTS = [("float32", None), ("float16", None), ("int8", None), ("binary", None),
            ("float32", 256), ("float32", 128), ("float32", 64), ("int8", 128), ("binary", 256)]


def load(n: int) -> list[str]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for _, line in zip(range(n), f, strict=False)]


def raw_vectors(pipe: Pipeline, texts: list[str]) -> torch.Tensor:
    fitted = pipe.encode_for_embedding(texts, "silent")
    return pipe.embed_encoded(fitted, normalize=False, progress=False)  # (N, H) float32, pooled


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--model", default=None, help="model folder (default all-MiniLM-L6-v2)")
    args = parser.parse_args()

    docs = load(args.docs)
    pairs = [(i, parts[0]) for i, d in enumerate(docs) if len(parts := re.split(r"(?<=[.!?])\s+", d)) >= 2]
    pairs = pairs[:: max(1, len(pairs) // args.queries)][: args.queries]
    answers = np.array([i for i, _ in pairs])
    pipe = Pipeline(args.model)
    doc_raw = raw_vectors(pipe, docs)
    query_raw = raw_vectors(pipe, [q for _, q in pairs])
    width = doc_raw.shape[1]

    full = shape_vectors(doc_raw, normalize=True).values
    full_queries = shape_vectors(query_raw, normalize=True).values
    reference = top_k(full_queries @ full.T, 10)

    print(f"{len(docs)} documents, {len(pairs)} queries, {width}-dim {pipe.folder.name}\n")
    print("| precision | dim | bytes / vector | cosine to float32 (mean / min) | overlap@10 | recall@1 |")
    print("|---|---:|---:|---|---:|---:|")
    for precision, dim in VARIANTS:
        d = dim or width
        stored = shape_vectors(doc_raw, normalize=True, dim=dim, precision=precision)
        same_dim = shape_vectors(doc_raw, normalize=True, dim=dim).values
        restored = restore_vectors(stored.values, precision, scales=stored.scales, dim=d)
        cosine = (restored * same_dim).sum(1) / np.linalg.norm(restored, axis=1) / np.linalg.norm(same_dim, axis=1)
        if precision == "binary":
            query_bits = shape_vectors(query_raw, normalize=True, dim=dim, precision="binary").values
            hamming = np.unpackbits(query_bits[:, None, :] ^ stored.values[None, :, :], axis=2).sum(2)
            scores = -hamming.astype(np.float32)
        else:
            queries = shape_vectors(query_raw, normalize=True, dim=dim).values
            scores = queries @ restored.T
        top = top_k(scores, 10)
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, reference, strict=True)])
        recall = float((top[:, 0] == answers).mean())
        size = stored.values.shape[1] * stored.values.itemsize + (4 if stored.scales is not None else 0)
        print(f"| {precision} | {d} | {size} | {cosine.mean():.4f} / {cosine.min():.4f} | {overlap:.3f} | "
              f"{recall:.3f} |")


if __name__ == "__main__":
    main()
