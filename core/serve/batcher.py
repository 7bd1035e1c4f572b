"""Dynamic batching: texts of concurrent embedding requests share forward passes.

One :class:`ModelWorker` (a thread) per served model owns every forward pass of that model. A
request is tokenized and fitted by the embed task (``Pipeline.encode_for_embedding``: truncation,
windows) before it is queued, so its token count is known; a request larger than the token budget
is split into pieces of whole texts. The worker takes pieces in arrival order until the budget is
full, or, when the queue runs dry first, until ``max_wait`` has passed since the first one; merges
them into one :class:`~bertzoo.inference.tokenizer.FittedIds`; runs ``Pipeline.embed_encoded`` on
it (the offline path: packed, length-sorted, the same pooling) un-normalised; and hands each piece
its rows. Normalising is left to the request, so requests that ask differently share a pass.

Other tasks (rerank, classify, fill-mask) are queued as calls run whole by the same thread, so a
model runs one forward at a time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bertzoo.serve.metrics import Metrics

if TYPE_CHECKING:
    from torch import Tensor

    from bertzoo.inference.pipeline import Pipeline
    from bertzoo.inference.tokenizer import FittedIds


def piece_tokens(fitted: FittedIds) -> int:
    """Real tokens a forward pass over ``fitted`` runs (windows included)."""
    return int(fitted.sequences.lengths.sum())


def slice_fitted(fitted: FittedIds, start: int, stop: int) -> FittedIds:
    """Texts ``start:stop`` of ``fitted``, with their sequences (windows of a text stay together)."""
    from bertzoo.inference.tokenizer import FittedIds, TokenIds

    seqs = fitted.sequences
    if fitted.owner is None:
        first, last, owner = start, stop, None
    else:
        first, last = np.searchsorted(fitted.owner, [start, stop])  # owner is sorted: windows follow their text
        owner = fitted.owner[first:last] - start
    types = seqs.type_ids[first:last] if seqs.type_ids is not None else None
    part = TokenIds(seqs.ids[first:last], seqs.lengths[first:last], seqs.truncated[first:last], types)
    return _with_prompt(FittedIds(part, fitted.tokens[start:stop], fitted.truncated[start:stop], owner),
                        _prompt_tokens([fitted]))


def _prompt_tokens(parts: Sequence[FittedIds]) -> int:
    """The leading prompt tokens every part leaves out of pooling (``include_prompt: false``)."""
    counts = {int(getattr(p, "prompt_tokens", 0)) for p in parts}
    if len(counts) > 1:  # one model, one default prompt: requests never differ; refuse rather than mis-pool
        raise RuntimeError(f"cannot batch texts with different prompt lengths {sorted(counts)} together")
    return counts.pop() if counts else 0


def _with_prompt(fitted: FittedIds, prompt_tokens: int) -> FittedIds:
    from bertzoo.inference.prompts import PromptedIds

    if not prompt_tokens:
        return fitted
    return PromptedIds(fitted.sequences, fitted.tokens, fitted.truncated, fitted.owner, prompt_tokens=prompt_tokens)


def split_fitted(fitted: FittedIds, budget: int) -> list[FittedIds]:
    """``fitted`` cut into runs of whole texts of at most ``budget`` tokens (a longer text alone)."""
    if len(fitted) <= 1 or piece_tokens(fitted) <= budget:
        return [fitted]
    per_text = fitted.sequences.lengths if fitted.owner is None else np.bincount(
        fitted.owner, weights=fitted.sequences.lengths, minlength=len(fitted)).astype(np.int64)
    pieces, start, used = [], 0, 0
    for i, n in enumerate(per_text.tolist()):
        if i > start and used + n > budget:
            pieces.append(slice_fitted(fitted, start, i))
            start, used = i, 0
        used += n
    pieces.append(slice_fitted(fitted, start, len(fitted)))
    return pieces


def merge_fitted(parts: Sequence[FittedIds]) -> FittedIds:
    """One :class:`FittedIds` holding ``parts`` in order (owners shifted; None when no part has windows)."""
    from bertzoo.inference.tokenizer import FittedIds, TokenIds

    if len(parts) == 1:
        return parts[0]
    ids = [seq for p in parts for seq in p.sequences.ids]
    types = None
    if any(p.sequences.type_ids is not None for p in parts):  # a part without them has all-zero types
        types = [t for p in parts for t in (p.sequences.type_ids or [[0] * len(seq) for seq in p.sequences.ids])]
    seqs = TokenIds(ids, np.concatenate([p.sequences.lengths for p in parts]),
                    np.concatenate([p.sequences.truncated for p in parts]), types)
    owner = None
    if any(p.owner is not None for p in parts):
        owners, offset = [], 0
        for p in parts:
            owners.append((np.arange(len(p)) if p.owner is None else p.owner) + offset)
            offset += len(p)
        owner = np.concatenate(owners)
    merged = FittedIds(seqs, np.concatenate([p.tokens for p in parts]),
                       np.concatenate([p.truncated for p in parts]), owner)
    return _with_prompt(merged, _prompt_tokens(parts))


@dataclass
class _Piece:
    fitted: FittedIds
    tokens: int
    future: Future[Tensor]


@dataclass
class _Call:
    run: Callable[[], Any]
    future: Future[Any]


class ModelWorker:
    """The thread that runs every forward pass of one served model.

    Args:
        name: the model's name (thread name and metric label).
        embedder: the model's embed pipeline, or None when it serves no embedding.
        batch_tokens: real tokens per merged forward pass.
        max_wait_s: how long to wait for more pieces when the queue runs dry before the budget is full.
        metrics: where batch sizes and the queue depth go.
        threads: torch CPU threads for the passes (None = torch's own).
    """

    def __init__(self, name: str, embedder: Pipeline | None, *, batch_tokens: int, max_wait_s: float,
                 metrics: Metrics, threads: int | None = None) -> None:
        self.name = name
        self.embedder = embedder
        self.batch_tokens = batch_tokens
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        self.threads = threads
        self._queue: deque[_Piece | _Call] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name=f"bertzoo-serve-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Run what is queued, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit_embed(self, fitted: FittedIds) -> list[Future[Tensor]]:
        """Queue ``fitted``; each future gets ``(rows, D)`` un-normalised float32 CPU vectors of one piece."""
        pieces = [_Piece(p, piece_tokens(p), Future()) for p in split_fitted(fitted, self.batch_tokens)]
        self._put(pieces, sum(len(p.fitted) for p in pieces))
        return [p.future for p in pieces]

    def submit_call(self, run: Callable[[], Any]) -> Future[Any]:
        """Queue ``run()`` (a whole task call on this model); the future gets its result."""
        call = _Call(run, Future())
        self._put([call], 0)
        return call.future

    def _put(self, items: list[_Piece] | list[_Call], texts: int) -> None:
        with self._cond:
            if self._closing:
                raise RuntimeError(f"the worker of {self.name!r} is shutting down")
            self._queue.extend(items)
            self._cond.notify()
        if texts:
            self.metrics.queued(self.name, texts)

    # -- the thread ------------------------------------------------------------------------------
    def _take(self) -> list[_Piece] | _Call | None:
        """The next call, or the next pieces up to the token budget; None once closed and drained."""
        with self._cond:
            while not self._queue:
                if self._closing:
                    return None
                self._cond.wait()
            first = self._queue.popleft()
            if isinstance(first, _Call):
                return first
            pieces, used = [first], first.tokens
            deadline = time.monotonic() + self.max_wait_s
            while used < self.batch_tokens:
                if self._queue:
                    nxt = self._queue[0]
                    if isinstance(nxt, _Call) or used + nxt.tokens > self.batch_tokens:
                        break
                    self._queue.popleft()
                    pieces.append(nxt)
                    used += nxt.tokens
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or self._closing:
                    break
                self._cond.wait(left)
            return pieces

    def _loop(self) -> None:
        while True:
            work = self._take()
            if work is None:
                return
            if isinstance(work, _Call):
                _settle(work.future, work.run)
            else:
                self._embed(work)

    def _embed(self, pieces: list[_Piece]) -> None:
        texts = sum(len(p.fitted) for p in pieces)
        self.metrics.queued(self.name, -texts)
        merged = merge_fitted([p.fitted for p in pieces])
        self.metrics.batch(self.name, len(merged.sequences), piece_tokens(merged))
        try:
            if self.embedder is None:
                raise RuntimeError(f"model {self.name!r} serves no embeddings")
            rows = self.embedder.embed_encoded(merged, batch_tokens=self.batch_tokens, normalize=False,
                                               progress=False, threads=self.threads).cpu()
        except Exception as exc:  # every waiting request hears of it; the worker lives on
            for p in pieces:
                p.future.set_exception(exc)
            return
        start = 0
        for p in pieces:
            p.future.set_result(rows[start:start + len(p.fitted)])
            start += len(p.fitted)


def _settle(future: Future[Any], run: Callable[[], Any]) -> None:
    try:
        future.set_result(run())
    except Exception as exc:
        future.set_exception(exc)


__all__ = ["ModelWorker", "merge_fitted", "piece_tokens", "slice_fitted", "split_fitted"]
