"""Classifier heads: ``sequence-classification``, ``multiple-choice``, ``token-classification``.

Each is dropout → ``classifier: Linear`` (HF's key) on the pooled output (sequence,
multiple choice) or on every token (token classification, no pooler). The dropout rate is
``classifier_dropout``, or ``hidden_dropout_prob`` when that is None (HF's fallback).

Shape legend: ``B`` batch, ``C`` choices, ``S`` sequence length, ``H`` hidden size, ``L`` num_labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertzoo.errors import InputError
from bertzoo.heads.base import (
    BertHead,
    check_class_labels,
    check_float_labels,
    check_pooled,
    check_states,
    classifier_dropout,
    finish,
)
from bertzoo.heads.options import (
    SequenceClassificationOptions,
    TokenClassificationOptions,
)
from bertzoo.heads.outputs import MultipleChoiceModelOutput, SequenceClassifierOutput, TokenClassifierOutput
from bertzoo.interfaces import TaskStates


class LabelledHead(BertHead):
    """A head whose outputs are named labels: ``num_labels``, ``id2label``, ``label2id``
    (stored in ``config.json`` exactly where transformers keeps them)."""

    @property
    def num_labels(self) -> int:
        return int(self.options.num_labels)  # type: ignore[union-attr]

    @property
    def id2label(self) -> dict[int, str]:
        return dict(self.options.id2label)  # type: ignore[union-attr]

    @property
    def label2id(self) -> dict[str, int]:
        return dict(self.options.label2id)  # type: ignore[union-attr]

    @classmethod
    def options_from_hf_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        # JSON form (string keys), as validated options are stored; label2id is id2label's inverse
        options: dict[str, Any] = {}
        if config.get("id2label"):
            options["id2label"] = {str(k): v for k, v in config["id2label"].items()}
        elif config.get("num_labels") is not None:  # legacy files wrote num_labels itself
            options["num_labels"] = int(config["num_labels"])
        if config.get("problem_type") is not None and cls.options_model is not None and (
            "problem_type" in cls.options_model.model_fields
        ):
            options["problem_type"] = config["problem_type"]
        return options

    @classmethod
    def hf_config_from_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        assert cls.options_model is not None
        opts = cls.options_model.model_validate(dict(options))
        config: dict[str, Any] = {
            "id2label": {str(i): name for i, name in opts.id2label.items()},  # type: ignore[attr-defined]
            "label2id": dict(opts.label2id),  # type: ignore[attr-defined]
        }
        if getattr(opts, "problem_type", None) is not None:
            config["problem_type"] = opts.problem_type  # type: ignore[attr-defined]
        return config


class LabelClassifierHead(LabelledHead):
    """dropout → ``classifier: Linear(H, num_labels)`` (HF's keys), on what the subclass feeds it."""

    classifier_keys: ClassVar[tuple[str, ...]] = ("classifier.weight", "classifier.bias")

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.dropout = nn.Dropout(classifier_dropout(spec))
        self.classifier = nn.Linear(spec.hidden_size, self.num_labels)


class BertForSequenceClassification(LabelClassifierHead):
    """Classification or regression on the pooled output (HF ``BertForSequenceClassification``).

    Loss by ``problem_type``: ``regression`` MSE, ``single_label_classification`` cross-entropy
    (-100 ignored), ``multi_label_classification`` BCE-with-logits. When it is None, the first
    call with labels infers it as HF does (num_labels == 1 → regression; integer labels →
    single-label; float labels → multi-label) and keeps it, so it is saved with the model.
    """

    uses_pooler: ClassVar[bool] = True
    options_model = SequenceClassificationOptions

    @property
    def problem_type(self) -> str | None:
        return self.options.problem_type  # type: ignore[union-attr]

    def _infer_problem_type(self, labels: Tensor) -> str:
        if self.num_labels == 1:
            problem = "regression"
        elif not labels.dtype.is_floating_point and labels.dtype != torch.bool:
            problem = "single_label_classification"
        else:
            problem = "multi_label_classification"
        # sticky, as HF writes it into the config: later calls and save_pretrained see it
        self.options.problem_type = problem  # type: ignore[union-attr]
        head_spec = getattr(getattr(self.spec, "components", None), "head", None)
        if head_spec is not None:
            head_spec.options["problem_type"] = problem
        return problem

    # -- tasks "classify" and "rerank" (bertzoo.interfaces.ClassifyTask) ---------------------------
    def classify_states(self, states: TaskStates) -> Tensor:
        """``(B, L)`` logits from packed or padded states: the trunk's pooler (``cls-tanh`` takes each
        sequence's first token), then dropout and the classifier, as :meth:`forward` does.

        Raises:
            InputError: states that do not fit the model, or a pooler output that is not ``(B, H)``.
        """
        hidden = check_states(states, "sequence-classification", self.spec.hidden_size)
        pooler = self.bert.pooler
        if states.cu_seqlens is not None:
            pooled = pooler(hidden, cu_seqlens=states.cu_seqlens)
        else:
            pooled = pooler(hidden, states.attention_mask)
        pooled = check_pooled(pooled, states, "sequence-classification", self.spec.hidden_size)
        return self.classifier(self.dropout(pooled))  # type: ignore[no-any-return]

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """The loss of ``logits`` (B, L) against ``labels`` by the (possibly inferred) problem type.

        Raises:
            InputError: labels whose dtype or shape does not fit the problem type.
        """
        if not isinstance(labels, Tensor):
            raise InputError(f"sequence-classification: labels must be a torch.Tensor, got {type(labels).__name__}")
        batch, n = logits.shape
        problem = self.problem_type or self._infer_problem_type(labels)
        head = f"sequence-classification ({problem})"
        if problem == "regression":
            shapes = ((batch,), (batch, 1)) if n == 1 else ((batch, n),)
            labels = check_float_labels(labels, "labels", shapes, head, "regression targets")
            if n == 1:
                return F.mse_loss(logits.squeeze(), labels.squeeze())
            return F.mse_loss(logits, labels)
        if problem == "single_label_classification":
            labels = check_class_labels(labels, "labels", (batch,), head)
            return F.cross_entropy(logits.view(-1, n), labels.view(-1))
        labels = check_float_labels(
            labels, "labels", ((batch, n),), head,
            "multi-label targets (one 0/1 float per label; integer labels mean single-label)",
        )
        return F.binary_cross_entropy_with_logits(logits, labels)

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, labels: Tensor | None = None,
                return_dict: bool | None = None, **kwargs: Any
    ) -> SequenceClassifierOutput | tuple[Tensor, ...]:
        """Args: ids (B, S); ``labels`` (B,) class ids, (B, L) floats (multi-label), or (B,) /
        (B, L) floats (regression). Returns logits (B, L).

        Raises:
            InputError: labels of the wrong shape or dtype.
        """
        out = self.run_bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs,
        )
        logits = self.classifier(self.dropout(out.pooler_output))  # (B, L)
        loss = self.loss(logits, labels) if labels is not None else None
        return finish(
            SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions),
            return_dict,
        )


def _batch_choices(name: str, value: Any) -> tuple[int, int]:
    _check_padded(name, value)
    if value.dim() < 2:
        raise InputError(f"multiple-choice: {name} must have shape (batch, choices, seq), got {tuple(value.shape)}")
    return int(value.shape[0]), int(value.shape[1])


def _check_padded(name: str, value: Any) -> None:
    if not isinstance(value, Tensor) or value.is_nested:
        raise InputError(
            f"multiple-choice: {name} must be one padded tensor of shape (batch, choices, seq); got "
            f"{'a nested (ragged) tensor' if isinstance(value, Tensor) else type(value).__name__}. Every example "
            "needs the same number of choices: pad missing choices with a copy and mask them out of the labels"
        )


def _flatten_choices(name: str, value: Any, batch_choices: tuple[int, int], trailing: int) -> Tensor | None:
    """(B, C, S[, H]) → (B·C, S[, H]), checking every input has the same (B, C)."""
    if value is None:
        return None
    _check_padded(name, value)
    if value.dim() != 2 + trailing:
        want = "(batch, choices, seq" + (", hidden)" if trailing == 2 else ")")
        raise InputError(f"multiple-choice: {name} must have shape {want}, got {tuple(value.shape)}")
    if tuple(value.shape[:2]) != batch_choices:
        raise InputError(
            f"multiple-choice: {name} has (batch, choices) = {tuple(value.shape[:2])} but the input has "
            f"{batch_choices}; every tensor needs the same number of choices per example"
        )
    return value.reshape(-1, *value.shape[2:])


class BertForMultipleChoice(BertHead):
    """One score per choice (HF ``BertForMultipleChoice``): inputs (B, C, S) are flattened to
    (B·C, S), each pooled output goes through ``classifier: Linear(H, 1)``, logits are (B, C)."""

    uses_pooler: ClassVar[bool] = True
    classifier_keys: ClassVar[tuple[str, ...]] = ("classifier.weight", "classifier.bias")

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.dropout = nn.Dropout(classifier_dropout(spec))
        self.classifier = nn.Linear(spec.hidden_size, 1)

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, labels: Tensor | None = None,
                return_dict: bool | None = None, **kwargs: Any
    ) -> MultipleChoiceModelOutput | tuple[Tensor, ...]:
        """Args: ids (B, C, S) or embeds (B, C, S, H), the same for mask, token types, positions;
        ``labels`` (B,) index of the right choice.

        Raises:
            InputError: inputs that are not (B, C, S), disagree on (B, C), or are ragged; bad labels.
        """
        if input_ids is not None:
            bc = _batch_choices("input_ids", input_ids)
            input_ids = _flatten_choices("input_ids", input_ids, bc, 1)
        elif inputs_embeds is not None:
            bc = _batch_choices("inputs_embeds", inputs_embeds)
        else:
            raise InputError("multiple-choice: give input_ids (batch, choices, seq) or inputs_embeds")
        inputs_embeds = _flatten_choices("inputs_embeds", inputs_embeds, bc, 2)
        attention_mask = _flatten_choices("attention_mask", attention_mask, bc, 1)
        token_type_ids = _flatten_choices("token_type_ids", token_type_ids, bc, 1)
        position_ids = _flatten_choices("position_ids", position_ids, bc, 1)

        out = self.run_bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs,
        )
        logits = self.classifier(self.dropout(out.pooler_output)).view(-1, bc[1])  # (B, C)
        loss = None
        if labels is not None:
            labels = check_class_labels(labels, "labels", (bc[0],), "multiple-choice")
            loss = F.cross_entropy(logits, labels.view(-1))
        return finish(
            MultipleChoiceModelOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions),
            return_dict,
        )


class BertForTokenClassification(LabelClassifierHead):
    """One label per token (HF ``BertForTokenClassification``); the trunk has no pooler."""

    uses_pooler: ClassVar[bool] = False
    per_token_outputs: ClassVar[bool] = True
    options_model = TokenClassificationOptions

    # -- task "token-classify" (bertzoo.interfaces.TokenClassifyTask) -------------------------------
    def token_logits(self, states: TaskStates) -> Tensor:
        """``(T, L)`` logits from packed states, ``(B, S, L)`` from padded ones.

        Raises:
            InputError: states that do not fit the model.
        """
        hidden = check_states(states, "token-classification", self.spec.hidden_size)
        return self.classifier(self.dropout(hidden))  # type: ignore[no-any-return]

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, labels: Tensor | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> TokenClassifierOutput | tuple[Tensor, ...]:
        """Args: ids (B, S); ``labels`` (B, S) class ids, -100 for padding / sub-word pieces.
        Returns logits (B, S, L).

        Raises:
            InputError: labels of the wrong shape or dtype.
        """
        out = self.run_bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs,
        )
        logits = self.classifier(self.dropout(out.last_hidden_state))  # (B, S, L)
        loss = None
        if labels is not None:
            labels = check_class_labels(labels, "labels", tuple(logits.shape[:2]), "token-classification")
            loss = F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        return finish(
            TokenClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions),
            return_dict,
        )
