"""The ``answer`` task: extractive question answering, as transformers' question-answering pipeline.

The question and context are encoded as a pair, the context cut into windows of at most
``min(max_length, 384)`` tokens that overlap by ``min(window // 2, 128)`` tokens. In each window the
start and end logits of tokens outside the context are masked (the first token, ``[CLS]``, is kept
for the softmax and then zeroed), softmaxed, and the best span of at most ``max_answer_len`` tokens
maximises ``p_start × p_end``; the span is widened to whole words and returned as character offsets
into the context. The best window wins.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bertzoo.errors import InputError
from bertzoo.inference.engine import Engine
from bertzoo.inference.spans import per_text_rows, token_ids_of

MAX_WINDOW = 384  # transformers' max_seq_len default
MAX_STRIDE = 128  # its doc_stride default
MAX_ANSWER_LEN = 15


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()  # type: ignore[no-any-return]


def best_span(start: np.ndarray, end: np.ndarray, allowed: np.ndarray, max_answer_len: int,
              ) -> tuple[int, int, float] | None:
    """The best ``(start token, end token, score)`` of one window, or None if no span is allowed.

    ``allowed`` is True on context tokens and on the first token ([CLS]), as transformers' ``p_mask``.
    """
    p_start = _softmax(np.where(allowed, start, -10000.0))
    p_end = _softmax(np.where(allowed, end, -10000.0))
    p_start[0] = p_end[0] = 0.0  # [CLS] takes part in the softmax only
    candidates = np.tril(np.triu(np.outer(p_start, p_end)), max_answer_len - 1)
    s, e = np.unravel_index(int(np.argmax(candidates)), candidates.shape)
    if not (allowed[s] and allowed[e]):
        return None
    return int(s), int(e), float(candidates[s, e])


def _characters(encoding: Any, s: int, e: int) -> tuple[int, int]:
    """Character span of tokens ``s..e`` in the context, widened to whole words."""
    start_word, end_word = encoding.token_to_word(s), encoding.token_to_word(e)
    if start_word is not None and end_word is not None:
        first = encoding.word_to_chars(start_word, sequence_index=1)
        last = encoding.word_to_chars(end_word, sequence_index=1)
        if first is not None and last is not None:
            return int(first[0]), int(last[1])
    return int(encoding.offsets[s][0]), int(encoding.offsets[e][1])


def answer(
    engine: Engine,
    question: str,
    context: str,
    *,
    max_answer_len: int = MAX_ANSWER_LEN,
    batch_tokens: int | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """The best answer span: ``{"score", "start", "end", "answer"}`` (offsets into ``context``).

    Raises:
        InputError: a question or context that is not a non-empty string, or a bad ``max_answer_len``.
    """
    engine.require("answer")
    for name, value in (("question", question), ("context", context)):
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"answer: the {name} must be a non-empty string, got {value!r:.60}")
    if max_answer_len < 1:
        raise InputError(f"max_answer_len={max_answer_len} must be at least 1")
    window = min(engine.max_length, MAX_WINDOW)
    stride = min(window // 2, MAX_STRIDE)
    first = engine.tokenizer.encodings([(question, context)], max_length=window, strategy="only_second",
                                       stride=stride)[0]
    windows = [first, *first.overflowing]
    best: tuple[float, int, int] | None = None
    enc = token_ids_of(windows, pairs=engine.tokenizer.token_types)  # type ids only where the family takes them
    for i, (start, end) in per_text_rows(engine, enc, "span_logits", batch_tokens=batch_tokens, progress=False,
                                         threads=threads):
        encoding = windows[i]
        allowed = np.array([sid == 1 for sid in encoding.sequence_ids])
        allowed[0] = True
        span = best_span(start.numpy(), end.numpy(), allowed, max_answer_len)
        if span is None:
            continue
        s, e, score = span
        if best is None or score > best[0]:
            chars = _characters(encoding, s, e)
            best = (score, *chars)
    if best is None:
        return {"score": 0.0, "start": 0, "end": 0, "answer": ""}
    score, start_char, end_char = best
    return {"score": score, "start": start_char, "end": end_char, "answer": context[start_char:end_char]}


__all__ = ["answer", "best_span"]
