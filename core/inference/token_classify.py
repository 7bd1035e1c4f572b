"""The ``token-classify`` task (NER and the like), as transformers' token-classification pipeline.

Per token (special tokens left out) the softmax over the head's token logits; ``aggregation="none"``
gives every token whose best label is not ``O`` (``{"entity", "score", "index", "word", "start",
"end"}``); ``"simple"`` groups adjacent tokens of the same entity type (a ``B-`` tag starts a new
group) into ``{"entity_group", "score" (mean), "word", "start", "end"}``, ``O`` groups dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from bertzoo.errors import InputError
from bertzoo.inference.batching import as_text_list, check_strings
from bertzoo.inference.engine import Engine
from bertzoo.inference.spans import per_text_rows, token_ids_of

AGGREGATIONS = ("simple", "none")
IGNORE_LABELS = ("O",)


def _tag(label: str) -> tuple[str, str]:
    """``"B-PER"`` → ``("B", "PER")``; a label without a B-/I- prefix continues like I-."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def _group(engine: Engine, tokens: list[dict[str, Any]]) -> dict[str, Any]:
    words = [t["word"] for t in tokens]
    decoder = engine.tokenizer.backend.decoder
    return {
        "entity_group": tokens[0]["entity"].split("-", 1)[-1],
        "score": float(np.nanmean([t["score"] for t in tokens])),
        "word": decoder.decode(words) if decoder is not None else " ".join(words),
        "start": tokens[0]["start"],
        "end": tokens[-1]["end"],
    }


def _group_entities(engine: Engine, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    current: list[dict[str, Any]] = []
    for entity in entities:
        if current:
            bi, tag = _tag(entity["entity"])
            if not (tag == _tag(current[-1]["entity"])[1] and bi != "B"):
                groups.append(_group(engine, current))
                current = []
        current.append(entity)
    if current:
        groups.append(_group(engine, current))
    return groups


def token_classify(
    engine: Engine,
    texts: str | Iterable[str],
    *,
    aggregation: str = "simple",
    batch_tokens: int | None = None,
    progress: bool | None = None,
    threads: int | None = None,
) -> Any:
    """Entities per text (one string gives one list), character offsets into the text.

    Raises:
        InputError: a non-string item or an unknown aggregation.
    """
    engine.require("token-classify")
    if aggregation not in AGGREGATIONS:
        raise InputError(f"aggregation={aggregation!r} is unknown; use one of {', '.join(AGGREGATIONS)}")
    items, single = as_text_list(texts, "token_classify")
    items = check_strings(items, "token_classify")
    id2label = {int(k): str(v) for k, v in dict(engine.head.id2label).items()}
    encodings = engine.tokenizer.encodings(items)
    cut = sum(bool(e.overflowing) for e in encodings)
    if cut:
        import warnings

        from bertzoo.inference.truncation import TruncationWarning

        warnings.warn(f"{cut} of {len(items)} texts truncated at {engine.max_length} tokens", TruncationWarning,
                      stacklevel=3)
    results: list[Any] = [None] * len(items)
    enc = token_ids_of(encodings, pairs=False)
    for i, logits in per_text_rows(engine, enc, "token_logits", batch_tokens=batch_tokens, progress=progress,
                                   threads=threads):
        encoding, text = encodings[i], items[i]
        scores = logits.softmax(dim=-1).numpy()  # (n, labels)
        entities = []
        for idx, (token_id, special) in enumerate(zip(encoding.ids, encoding.special_tokens_mask, strict=True)):
            if special:
                continue
            start, end = encoding.offsets[idx]
            word = encoding.tokens[idx] if token_id != engine.tokenizer.unk_id else text[start:end]
            best = int(scores[idx].argmax())
            entities.append({"entity": id2label.get(best, f"LABEL_{best}"), "score": float(scores[idx][best]),
                             "index": idx, "word": word, "start": start, "end": end})
        grouped = entities if aggregation == "none" else _group_entities(engine, entities)
        results[i] = [e for e in grouped
                      if e.get("entity") not in IGNORE_LABELS and e.get("entity_group") not in IGNORE_LABELS]
    return results[0] if single else results


__all__ = ["AGGREGATIONS", "token_classify"]
