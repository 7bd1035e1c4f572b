"""Training objectives: per-head data encoding, micro-batch tensors, loss and predictions.

Every objective reaches the model only through the trunk (``model.bert``: packed
``forward_packed`` or the padded forward) and the head's task contract
(:mod:`bertzoo.interfaces`: ``classify_states``, ``token_logits``, ``embed_states``), so any family
whose heads register those tasks trains unchanged.

Losses are returned as a *sum* with the count of items it sums over (rows, or labelled tokens);
the loop divides by the count of the whole optimizer step (every micro-batch of every process),
so gradient accumulation and DDP give the gradient of one big batch exactly:

- sequence-classification: the head's own loss rule (``head.loss``: cross-entropy, MSE or BCE by
  ``problem_type``, HF's), times the rows;
- token-classification: cross-entropy summed over labelled word pieces (``-100`` skipped);
- sentence-embedding: MultipleNegativesRankingLoss (sentence-transformers'): cosine similarity of
  each anchor to every positive of the batch, times ``scale`` (20), cross-entropy against its own
  positive; under DDP the positives of every process are gathered, as one process would see them;
- rerank: a cross-encoder, the sequence-classification head with one logit and BCE-with-logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertzoo.errors import InputError
from bertzoo.interfaces import TaskStates
from bertzoo.train import data as D
from bertzoo.train.batches import Inputs, flat_labels, make_inputs
from bertzoo.train.distributed import gather_rows


def trunk_of(model: nn.Module) -> Any:
    """The trunk a head wraps (``model.bert`` for every registered head)."""
    trunk = getattr(model, "bert", None)
    if trunk is None:
        raise InputError(f"{type(model).__name__} has no trunk at .bert; train a model built by bertzoo with a head")
    return trunk


def run_trunk(model: nn.Module, inputs: Inputs) -> TaskStates:
    """The trunk's last hidden states as a task contract takes them (packed: ``(T, H)``)."""
    trunk = trunk_of(model)
    if inputs.packed:
        hidden = trunk.forward_packed(inputs.input_ids, inputs.cu_seqlens, max_seqlen=inputs.max_seqlen,
                                      token_type_ids=inputs.token_type_ids)
        return TaskStates(hidden, inputs.input_ids, cu_seqlens=inputs.cu_seqlens,
                          token_type_ids=inputs.token_type_ids, max_seqlen=inputs.max_seqlen)
    hidden = trunk(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask,
                   token_type_ids=inputs.token_type_ids, return_dict=True).last_hidden_state
    return TaskStates(hidden, inputs.input_ids, attention_mask=inputs.attention_mask,
                      token_type_ids=inputs.token_type_ids, max_seqlen=inputs.max_seqlen)


class Objective:
    """One training recipe. Subclasses set the class attributes and the methods below."""

    name: ClassVar[str]
    head: ClassVar[str]  # the registered head it trains
    metric: str = "loss"  # the default metric for the best checkpoint and early stopping
    labels: D.LabelSpace | None = None

    def __init__(self, config: Any) -> None:
        self.config = config
        # the checkpoint's own labels (config.json id2label): reused, head and all, when the data has the same set
        self.checkpoint_labels: dict[int, str] | None = None
        self.reuses_head = False

    def adopt_checkpoint_labels(self) -> None:
        """Take the checkpoint's label order when the data's labels are the same set: its trained
        classifier is then kept, not re-initialised."""
        known, labels = self.checkpoint_labels, self.labels
        if known and labels is not None and sorted(known.values()) == sorted(labels.id2label.values()) and (
                len(known) > 1 or labels.problem_type == "regression"):
            self.labels = D.LabelSpace(labels.problem_type, {int(k): v for k, v in sorted(known.items())})
            self.reuses_head = True

    def head_options(self) -> dict[str, Any]:
        """Keyword overrides for ``from_pretrained`` (labels, problem type)."""
        return {}

    def encode(self, tokenizer: Any, rows: Sequence[dict[str, Any]], source: str, *, fit: bool) -> D.Encoded:
        raise NotImplementedError

    def count(self, data: D.Encoded, rows: Sequence[int]) -> int:
        """Items the loss of ``rows`` sums over."""
        return len(rows)

    def collate(self, data: D.Encoded, rows: Sequence[int], *, packed: bool, pad_id: int) -> dict[str, Any]:
        c = self.config
        ids = [data.ids[i] for i in rows]
        types = [data.type_ids[i] for i in rows] if data.type_ids is not None and c.text_pair_field else None
        return {"inputs": make_inputs(ids, types, packed=packed, pad_id=pad_id),
                "labels": torch.tensor([data.labels[i] for i in rows])}

    def loss_sum(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        raise NotImplementedError

    def predictions(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        raise NotImplementedError


class SequenceClassification(Objective):
    name = head = "sequence-classification"
    metric = "accuracy"

    def head_options(self) -> dict[str, Any]:
        assert self.labels is not None
        if self.reuses_head:
            return {}
        return {"id2label": dict(self.labels.id2label), "problem_type": self.labels.problem_type}

    def encode(self, tokenizer: Any, rows: Sequence[dict[str, Any]], source: str, *, fit: bool) -> D.Encoded:
        c = self.config
        values = D.column(rows, c.label_field, source)
        if fit:
            self.labels = D.sequence_labels(values, c.problem_type)
            self.adopt_checkpoint_labels()
            if self.labels.problem_type == "regression":
                self.metric = "mse"
        assert self.labels is not None
        ids, types = D.encode_texts(tokenizer, rows, c.text_field, c.text_pair_field, c.max_length, source)
        return D.Encoded(ids, D.sequence_targets(values, self.labels, source), type_ids=types)

    def collate(self, data: D.Encoded, rows: Sequence[int], *, packed: bool, pad_id: int) -> dict[str, Any]:
        batch = super().collate(data, rows, packed=packed, pad_id=pad_id)
        if self.labels is not None and self.labels.problem_type != "single_label_classification":
            batch["labels"] = batch["labels"].float()
        return batch

    def logits(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        return model.classify_states(run_trunk(model, batch["inputs"])).float()  # type: ignore[operator,no-any-return]

    def loss_sum(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        labels = batch["labels"]
        return model.loss(self.logits(model, batch), labels) * labels.shape[0]  # type: ignore[operator,no-any-return]

    def predictions(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        return self.logits(model, batch)


class Rerank(SequenceClassification):
    name = "rerank"
    metric = "mrr@10"

    def head_options(self) -> dict[str, Any]:
        return {} if self.checkpoint_labels and len(self.checkpoint_labels) == 1 else {"num_labels": 1}

    def encode(self, tokenizer: Any, rows: Sequence[dict[str, Any]], source: str, *, fit: bool) -> D.Encoded:
        c = self.config
        if c.text_pair_field is None:
            raise InputError("rerank trains on (query, passage, label) rows: give --text-pair-field with the passage")
        self.labels = D.LabelSpace("rerank", {0: "LABEL_0"})
        ids, types = D.encode_texts(tokenizer, rows, c.text_field, c.text_pair_field, c.max_length, source)
        labels = [float(v) for v in D.column(rows, c.label_field, source)]
        groups = [str(q) for q in D.column(rows, c.text_field, source)]
        return D.Encoded(ids, labels, type_ids=types, groups=groups)

    def collate(self, data: D.Encoded, rows: Sequence[int], *, packed: bool, pad_id: int) -> dict[str, Any]:
        batch = Objective.collate(self, data, rows, packed=packed, pad_id=pad_id)
        batch["labels"] = batch["labels"].float()
        return batch

    def loss_sum(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        logits = self.logits(model, batch)[:, 0]
        return F.binary_cross_entropy_with_logits(logits, batch["labels"], reduction="sum")


class TokenClassification(Objective):
    name = head = "token-classification"
    metric = "f1"

    def head_options(self) -> dict[str, Any]:
        assert self.labels is not None
        return {} if self.reuses_head else {"id2label": dict(self.labels.id2label)}

    def encode(self, tokenizer: Any, rows: Sequence[dict[str, Any]], source: str, *, fit: bool) -> D.Encoded:
        c = self.config
        words = [D.split_words(w) for w in D.column(rows, c.text_field, source)]
        tags = [[str(t) for t in D.split_words(v)] for v in D.column(rows, c.label_field, source)]
        for i, (w, t) in enumerate(zip(words, tags, strict=True)):
            if len(w) != len(t):
                raise InputError(f"{source}: row {i + 1} has {len(w)} words but {len(t)} labels; give one label per word")
        if fit:
            self.labels = D.tag_labels(tags)
            self.adopt_checkpoint_labels()
        assert self.labels is not None
        names = self.labels.label2id
        unknown = sorted({t for row in tags for t in row} - set(names))
        if unknown:
            raise InputError(f"{source}: tags {', '.join(unknown)} are not in the training tags; add them to the training file")
        tag_ids = [[names[t] for t in row] for row in tags]
        ids, labels, kept, first = D.encode_words(tokenizer, words, tag_ids, max_length=c.max_length,
                                                  label_all_tokens=c.label_all_tokens)
        return D.Encoded(ids, labels, words=kept, first=first)

    def count(self, data: D.Encoded, rows: Sequence[int]) -> int:
        return sum(1 for i in rows for t in data.labels[i] if t != D.IGNORE)

    def collate(self, data: D.Encoded, rows: Sequence[int], *, packed: bool, pad_id: int) -> dict[str, Any]:
        ids = [data.ids[i] for i in rows]
        labels = flat_labels([data.labels[i] for i in rows], packed=packed, fill=D.IGNORE)
        return {"inputs": make_inputs(ids, None, packed=packed, pad_id=pad_id), "labels": labels}

    def predictions(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        return model.token_logits(run_trunk(model, batch["inputs"])).float()  # type: ignore[operator,no-any-return]

    def loss_sum(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        logits = self.predictions(model, batch)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1),
                               ignore_index=D.IGNORE, reduction="sum")


class SentenceEmbedding(Objective):
    name = head = "sentence-embedding"
    metric = "mrr@10"

    def encode(self, tokenizer: Any, rows: Sequence[dict[str, Any]], source: str, *, fit: bool) -> D.Encoded:
        c = self.config
        if c.text_pair_field is None:
            raise InputError("sentence-embedding trains on (anchor, positive) pairs: give --text-pair-field "
                             "with the positive text (--text-field is the anchor)")
        anchors, _ = D.encode_texts(tokenizer, rows, c.text_field, None, c.max_length, source)
        positives, _ = D.encode_texts(tokenizer, rows, c.text_pair_field, None, c.max_length, source)
        return D.Encoded(anchors, list(range(len(anchors))), ids2=positives)

    def collate(self, data: D.Encoded, rows: Sequence[int], *, packed: bool, pad_id: int) -> dict[str, Any]:
        assert data.ids2 is not None
        # anchors then positives, one trunk call: (2B) sequences
        ids = [data.ids[i] for i in rows] + [data.ids2[i] for i in rows]
        return {"inputs": make_inputs(ids, None, packed=packed, pad_id=pad_id), "rows": len(rows)}

    def predictions(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        return model.embed_states(run_trunk(model, batch["inputs"])).float()  # type: ignore[operator,no-any-return]

    def loss_sum(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        vectors = self.predictions(model, batch)
        n = batch["rows"]
        anchors = F.normalize(vectors[:n], dim=-1)
        positives = F.normalize(vectors[n:], dim=-1)
        offset = 0
        if model.training:  # evaluation runs the whole table in every process: nothing to gather
            positives, offset = gather_rows(positives)
        scores = anchors @ positives.T * self.config.scale  # (B_local, B_global)
        target = torch.arange(n, device=scores.device) + offset
        return F.cross_entropy(scores, target, reduction="sum")


OBJECTIVE_CLASSES: dict[str, type[Objective]] = {
    cls.name: cls for cls in (SequenceClassification, Rerank, TokenClassification, SentenceEmbedding)
}
# main-job tasks a plugin head may register, mapped to the objective that trains it
TASK_OBJECTIVES = {"classify": "sequence-classification", "token-classify": "token-classification",
                   "embed": "sentence-embedding", "rerank": "rerank"}


class StepModule(nn.Module):
    """``model`` plus its objective as one module whose forward returns a micro-batch's loss sum:
    what DDP/FSDP wrap, so their hooks see every parameter the loss used."""

    def __init__(self, model: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: dict[str, Any], predict: bool = False) -> Any:
        """The loss sum; with ``predict`` also the predictions (evaluation goes through here too,
        so DDP's and FSDP's hooks run on every call)."""
        loss = self.objective.loss_sum(self.model, batch)
        if not predict:
            return loss
        return loss, self.objective.predictions(self.model, batch)


__all__ = [
    "OBJECTIVE_CLASSES", "Objective", "Rerank", "SentenceEmbedding", "SequenceClassification", "StepModule",
    "TASK_OBJECTIVES", "TokenClassification", "run_trunk", "trunk_of",
]
