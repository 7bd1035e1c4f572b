"""``bertzoo.CrossEncoder``: sentence-transformers' ``CrossEncoder`` names over bertzoo's classify engine.

``predict(pairs)`` scores ``(text, text_pair)`` pairs and ``rank(query, documents)`` sorts documents
for a query, returning what sentence-transformers returns: scores pass through the activation
(sigmoid for a one-label model, none otherwise, unless ``activation_fn`` says else; a checkpoint's
saved ``sentence_transformers.activation_fn`` is honoured for ``torch.nn.*`` classes), and ``rank``
gives ``[{"corpus_id", "score"[, "text"]}]`` best first. tests/compat/test_cross_encoder.py measures
the equality with sentence-transformers.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bertzoo.errors import InputError
from bertzoo.inference.pipeline import Pipeline

if TYPE_CHECKING:
    from torch import Tensor


class CrossEncoder:
    """A cross-encoder (sequence-classification checkpoint) with sentence-transformers' interface.

    Args:
        model_name_or_path: a local folder or a hub id of a sequence-classification checkpoint.
        device: ``"cpu"``, ``"cuda"``, ...; default CPU.
        max_length: tokens per pair (both texts and the specials); default the model's.
        activation_fn: applied to the logits by :meth:`predict` and :meth:`rank`; None = the
            checkpoint's saved one, else sigmoid for one label and none for several.
        compute: bertzoo's compute precision (``"float32"``, ``"bfloat16"``, ...).
        pipeline_options: more :class:`~bertzoo.inference.pipeline.Pipeline` keywords (``head``,
            ``attention``, ``compile``, ``allow_random_head``).

    Raises:
        CheckpointError: the model cannot be loaded, or lacks a classifier's weights.
    """

    def __init__(self, model_name_or_path: str | os.PathLike[str] | None = None, device: str | None = None,
                 max_length: int | None = None, activation_fn: Callable[[Tensor], Tensor] | None = None, *,
                 compute: str | None = None, **pipeline_options: Any) -> None:
        self.pipeline = Pipeline(model_name_or_path, task="classify", compute=compute, device=device,
                                 max_length=max_length, **pipeline_options)
        self.activation_fn = activation_fn if activation_fn is not None else self._default_activation()

    def __repr__(self) -> str:
        return f"CrossEncoder({str(self.pipeline.folder)!r}, device={str(self.pipeline.device)!r})"

    @property
    def num_labels(self) -> int:
        """Logits per pair (1 for a relevance cross-encoder)."""
        return len(dict(self.pipeline.head.id2label))

    @property
    def max_length(self) -> int:
        return self.pipeline.max_length

    def predict(
        self,
        sentences: Sequence[Sequence[str]] | Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Callable[[Tensor], Tensor] | None = None,
        apply_softmax: bool | None = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
    ) -> Any:
        """Scores of ``(text, text_pair)`` pairs, as ``CrossEncoder.predict`` returns them.

        Returns:
            ``(N,)`` float32 numpy scores for a one-label model, ``(N, labels)`` otherwise; one pair
            → one score (or row); ``convert_to_tensor`` → a torch tensor; ``convert_to_numpy=False``
            → a list of tensors.

        Args:
            batch_size: a batch holds up to ``batch_size * max_length`` tokens (bertzoo batches by
                tokens, longest first); the scores do not depend on it.
            activation_fn: overrides the encoder's for this call.
            apply_softmax: softmax over the labels of a several-label model (after the activation).

        Raises:
            InputError: an item that is not a pair of strings.
        """
        import torch

        from bertzoo.inference.classify import logits

        single = len(sentences) == 2 and all(isinstance(s, str) for s in sentences)
        pairs = [tuple(sentences)] if single else [self._pair(p, i) for i, p in enumerate(sentences)]
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size={batch_size!r} must be a positive integer")
        raw = logits(self.pipeline, pairs, batch_tokens=batch_size * self.max_length, progress=show_progress_bar,
                     threads=None)  # (N, labels) float32 on the CPU
        fn = activation_fn if activation_fn is not None else self.activation_fn
        scores = fn(raw) if fn is not None else raw
        if self.num_labels == 1:
            scores = scores.squeeze(-1)
        if apply_softmax and scores.dim() > 1:
            scores = torch.nn.functional.softmax(scores, dim=1)
        result: Any
        if convert_to_tensor:
            result = scores
        elif convert_to_numpy:
            result = scores.float().numpy() if len(scores) else np.array([])
        else:
            result = list(scores)
        return result[0] if single else result

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: int | None = None,
        return_documents: bool = False,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Callable[[Tensor], Tensor] | None = None,
    ) -> list[dict[str, Any]]:
        """``documents`` sorted by their score with ``query``: ``[{"corpus_id", "score"[, "text"]}]``,
        best first, the ``top_k`` best (None: all), as ``CrossEncoder.rank`` returns them.

        Raises:
            InputError: a model with several labels, a non-string query or documents.
        """
        if self.num_labels != 1:
            raise InputError(f"{str(self.pipeline.folder)!r} has {self.num_labels} labels; rank needs a cross-encoder "
                             "with one relevance logit (num_labels=1); use predict() for label scores")
        if not isinstance(query, str) or isinstance(documents, str):
            raise InputError("rank(query, documents): the query is one string and documents a list of strings")
        if not documents:
            return []
        scores = self.predict([(query, d) for d in documents], batch_size=batch_size,
                              show_progress_bar=show_progress_bar, activation_fn=activation_fn,
                              convert_to_tensor=True).tolist()
        results: list[dict[str, Any]] = []
        for i, score in enumerate(scores):
            item: dict[str, Any] = {"corpus_id": i, "score": score}
            if return_documents:
                item["text"] = documents[i]
            results.append(item)
        results = sorted(results, key=lambda x: x["score"], reverse=True)
        return results[:top_k]

    # -- internals -------------------------------------------------------------------------------
    @staticmethod
    def _pair(item: Any, index: int) -> tuple[str, str]:
        if isinstance(item, str) or not isinstance(item, Sequence) or len(item) != 2 or not all(
                isinstance(t, str) for t in item):
            raise InputError(f"sentences[{index}] is {item!r:.80}; each item must be a (text, text_pair) pair of strings")
        return (item[0], item[1])

    def _default_activation(self) -> Callable[[Tensor], Tensor] | None:
        """The checkpoint's saved activation (``torch.nn.*`` only), else sigmoid for one label, else none."""
        import torch

        path = self._saved_activation()
        if path is not None and path.startswith("torch."):
            module, _, name = path.rpartition(".")
            fn: Callable[[Tensor], Tensor] = getattr(importlib.import_module(module), name)()
            return fn
        return torch.nn.Sigmoid() if self.num_labels == 1 else None

    def _saved_activation(self) -> str | None:
        try:
            config = json.loads((self.pipeline.folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        saved = (config.get("sentence_transformers") or {}).get("activation_fn") or config.get(
            "sbert_ce_default_activation_function")
        return str(saved) if saved else None


__all__ = ["CrossEncoder"]
