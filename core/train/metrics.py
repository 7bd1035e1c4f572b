"""Evaluation metrics, small and dependency-free: accuracy / macro F1, MSE, entity F1 (seqeval's
default rules), MRR@10.

``LOWER_IS_BETTER`` names the metrics where smaller wins (the loop's best checkpoint and early
stopping read it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
from torch import Tensor

LOWER_IS_BETTER = frozenset({"loss", "mse"})


def classification(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """Accuracy and macro F1 of ``argmax(logits)`` (B, L) against class ids (B,)."""
    pred = logits.argmax(-1)
    accuracy = float((pred == labels).float().mean())
    scores = []
    for c in range(logits.shape[-1]):
        tp = int(((pred == c) & (labels == c)).sum())
        fp = int(((pred == c) & (labels != c)).sum())
        fn = int(((pred != c) & (labels == c)).sum())
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": accuracy, "f1": sum(scores) / len(scores) if scores else 0.0}


def multi_label(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """Micro F1 and exact-match accuracy of ``sigmoid(logits) > 0.5`` against 0/1 targets (B, L)."""
    pred = logits > 0
    gold = labels > 0.5
    tp = int((pred & gold).sum())
    denominator = int(pred.sum()) + int(gold.sum())
    return {"accuracy": float((pred == gold).all(-1).float().mean()), "f1": 2 * tp / denominator if denominator else 1.0}


def regression(predictions: Tensor, targets: Tensor) -> dict[str, float]:
    return {"mse": float(((predictions.reshape(targets.shape) - targets) ** 2).mean())}


def entities(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """``(type, start, end)`` chunks of an IOB1/IOB2/IOBES tag sequence, by seqeval's default
    (lenient) rules: an ``I-`` after ``O`` or after another type starts a chunk."""
    chunks: set[tuple[str, int, int]] = set()
    start, kind = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, name = tag.partition("-") if "-" in tag else (tag, "", "")
        ends = kind and (prefix in ("O", "B", "S") or name != kind or tag == "O")
        if ends:
            chunks.add((kind, start, i - 1))
            kind = ""
        if prefix in ("B", "S") or (prefix in ("I", "E") and not kind):
            start, kind = i, name
        if prefix in ("E", "S") and kind:
            chunks.add((kind, start, i))
            kind = ""
    return chunks


def entity_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro precision, recall and F1 over entity chunks, plus per-word accuracy."""
    tp = n_pred = n_gold = correct = words = 0
    for g, p in zip(gold, pred, strict=True):
        gs, ps = entities(g), entities(p)
        tp += len(gs & ps)
        n_pred += len(ps)
        n_gold += len(gs)
        correct += sum(a == b for a, b in zip(g, p, strict=True))
        words += len(g)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": correct / words if words else 0.0}


def mrr_at_10(scores: Tensor, relevant: Tensor) -> float:
    """Mean reciprocal rank (cut at 10) of queries' first relevant candidate: ``scores`` (Q, C),
    ``relevant`` bool (Q, C)."""
    order = scores.argsort(dim=-1, descending=True)[:, :10]
    hits = torch.gather(relevant, 1, order)
    ranks = torch.where(hits.any(-1), hits.float().argmax(-1) + 1, torch.zeros(1, dtype=torch.long))
    return float(torch.where(ranks > 0, 1.0 / ranks.clamp(min=1), torch.zeros(())).mean())


def grouped_mrr_at_10(scores: Sequence[float], labels: Sequence[float], groups: Sequence[str]) -> float:
    """MRR@10 of rerank rows grouped by query (rows with label > 0.5 are relevant)."""
    by_query: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for s, y, g in zip(scores, labels, groups, strict=True):
        by_query[g].append((float(s), float(y) > 0.5))
    total = 0.0
    for rows in by_query.values():
        ranked = sorted(rows, key=lambda r: -r[0])[:10]
        total += next((1.0 / (i + 1) for i, (_, hit) in enumerate(ranked) if hit), 0.0)
    return total / len(by_query) if by_query else 0.0


def improved(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


__all__ = ["LOWER_IS_BETTER", "classification", "entities", "entity_f1", "grouped_mrr_at_10", "improved",
           "multi_label", "mrr_at_10", "regression"]
