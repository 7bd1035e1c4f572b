"""The ``classify`` and ``rerank`` tasks, through the head's classify contract.

classify follows transformers' text-classification pipeline (labels and scores per text or text
pair); rerank scores ``(query, document)`` pairs with a cross-encoder and sorts them, best first,
as sentence-transformers' ``CrossEncoder.rank`` and text-embeddings-inference's ``/rerank`` do:
the score of a one-label model is the sigmoid of its logit (``raw=True`` gives the logit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from bertzoo.errors import InputError
from bertzoo.inference.batching import as_text_list, check_strings
from bertzoo.inference.engine import Engine

if TYPE_CHECKING:
    from torch import Tensor

SCORE_FUNCTIONS = ("softmax", "sigmoid", "none")


def default_function(problem_type: str | None, num_labels: int) -> str:
    """transformers' text-classification rule for turning logits into scores."""
    if problem_type == "regression":
        return "none"
    if problem_type == "multi_label_classification" or num_labels == 1:
        return "sigmoid"
    return "softmax"


def _labels(engine: Engine) -> dict[int, str]:
    return {int(k): str(v) for k, v in dict(engine.head.id2label).items()}


def logits(engine: Engine, items: Sequence[Any], *, batch_tokens: int | None, progress: bool | None,
           threads: int | None) -> Tensor:
    """``(N, num_labels)`` float32 logits of texts or text pairs, in input order (on the CPU)."""
    import torch

    classify_states = engine.contract("classify_states")
    n_labels = len(_labels(engine))
    out = torch.empty((len(items), n_labels), dtype=torch.float32)
    if items:
        enc = engine.tokenize(items)
        with engine.running(threads):
            for batch in engine.batches(enc, batch_tokens, progress):
                rows = classify_states(engine.states(batch))
                rows = engine.expect_shape(rows, (len(batch.index), n_labels), "logits")
                out[batch.index.cpu()] = rows.float().cpu()
    return out


def classify(
    engine: Engine,
    texts: Any,
    *,
    top_k: int | None = 1,
    function_to_apply: Literal["softmax", "sigmoid", "none"] | None = None,
    batch_tokens: int | None = None,
    progress: bool | None = None,
    threads: int | None = None,
) -> Any:
    """Labels and scores per text, as transformers' text-classification pipeline gives them.

    Args:
        texts: N strings, ``(text, text_pair)`` tuples or ``{"text", "text_pair"}`` dicts; one
            item gives one result.
        top_k: 1 → one ``{"label", "score"}`` dict per text; k > 1 → the k best, best first;
            None → every label.
        function_to_apply: scores from logits; default by ``problem_type`` as transformers does.
    """
    engine.require("classify")
    items, single = as_text_list(texts, "classify")
    items = check_strings(items, "classify", pairs=True)
    id2label = _labels(engine)
    n_labels = len(id2label)
    if top_k is not None and top_k < 1:
        raise InputError(f"top_k={top_k} must be at least 1, or None for every label")
    function = function_to_apply or default_function(engine.head.problem_type, n_labels)
    if function not in SCORE_FUNCTIONS:
        raise InputError(f"function_to_apply={function!r} is unknown; use one of {', '.join(SCORE_FUNCTIONS)}")
    raw = logits(engine, items, batch_tokens=batch_tokens, progress=progress, threads=threads)
    scores = raw.softmax(dim=-1) if function == "softmax" else raw.sigmoid() if function == "sigmoid" else raw
    k = n_labels if top_k is None else min(top_k, n_labels)
    results: list[Any] = []
    for row in scores.tolist():
        ranked = sorted(range(n_labels), key=lambda j: -row[j])[:k]
        labelled = [{"label": id2label.get(j, f"LABEL_{j}"), "score": row[j]} for j in ranked]
        results.append(labelled[0] if top_k == 1 else labelled)
    return results[0] if single else results


def rerank(
    engine: Engine,
    query: str,
    documents: Sequence[str],
    *,
    top_k: int | None = None,
    raw: bool = False,
    return_documents: bool = False,
    batch_tokens: int | None = None,
    progress: bool | None = None,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """``documents`` ranked by relevance to ``query``: ``[{"index", "score"}]``, best first.

    Args:
        query: the query text (first text of every pair).
        documents: the texts to rank (second text of every pair).
        top_k: keep the k best; None = all.
        raw: scores are the logits instead of their sigmoid.
        return_documents: add ``"text"`` (the document) to each result.

    Raises:
        InputError: a non-string query or document, a bad ``top_k``, or a model with more than one
            label (a cross-encoder has one relevance logit; use classify for label scores).
    """
    engine.require("rerank")
    if not isinstance(query, str):
        raise InputError(f"rerank: the query must be a string, got {type(query).__name__}")
    docs, _ = as_text_list(documents, "rerank")
    if isinstance(documents, str):
        raise InputError("rerank: documents must be a list of strings, got one string; wrap it in a list")
    docs = check_strings(docs, "rerank")
    if top_k is not None and top_k < 1:
        raise InputError(f"top_k={top_k} must be at least 1, or None for every document")
    n_labels = len(_labels(engine))
    if n_labels != 1:
        raise InputError(
            f"{str(engine.folder)!r} has {n_labels} labels; rerank needs a cross-encoder with one relevance "
            "logit (num_labels=1); use classify for label scores"
        )
    values = logits(engine, [(query, d) for d in docs], batch_tokens=batch_tokens, progress=progress,
                    threads=threads)[:, 0]
    scores = (values if raw else values.sigmoid()).tolist()
    order = sorted(range(len(docs)), key=lambda i: -scores[i])
    if top_k is not None:
        order = order[:top_k]
    results = []
    for i in order:
        item: dict[str, Any] = {"index": i, "score": scores[i]}
        if return_documents:
            item["text"] = docs[i]
        results.append(item)
    return results


__all__ = ["SCORE_FUNCTIONS", "classify", "default_function", "logits", "rerank"]
