"""ALBERT's heads (transformers' ``AlbertFor*``), on the shared BERT head code.

- ``masked-lm``: ``predictions`` = ``dense (H → E)`` → ``hidden_act`` → ``LayerNorm(E)`` →
  ``decoder (E → V)``; the decoder's weight is the (E-wide) word-embedding matrix and its bias is
  ``predictions.bias`` (both tied, ``predictions.decoder.*`` not saved). CE(-100) loss.
- ``pretraining``: the MLM head + ``sop_classifier`` (pooled → dropout(``classifier_dropout_prob``)
  → ``classifier: Linear(H, 2)``); loss = MLM CE + sentence-order CE, only when both label sets
  are given. SOP label 0 = original order, 1 = swapped.
- ``sequence-classification`` / ``multiple-choice``: BERT's, on ALBERT's pooler (a bare Linear +
  tanh), dropout ``classifier_dropout_prob`` (the spec's ``classifier_dropout``).
- ``token-classification``: BERT's (dropout ``classifier_dropout_prob``, else ``hidden_dropout_prob``).
- ``question-answering``: BERT's (no dropout).

Shape legend: B batch, S sequence, E embedding width, H hidden, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertzoo.heads.base import BertHead, check_class_labels, classifier_dropout, finish
from bertzoo.heads.classification import (
    BertForMultipleChoice,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from bertzoo.heads.language_modeling import mask_position_logits, tie_mlm_decoder, token_cross_entropy
from bertzoo.heads.outputs import MaskedLMOutput
from bertzoo.heads.question_answering import BertForQuestionAnswering
from bertzoo.interfaces import TaskStates
from bertzoo.model import ModelOutput
from bertzoo.plugins.activations import get_activation
from bertzoo.plugins.albert import embedding_width


@dataclass(eq=False)
class AlbertForPreTrainingOutput(ModelOutput):
    """pretraining (HF ``AlbertForPreTrainingOutput``). ``prediction_logits`` (B, S, V),
    ``sop_logits`` (B, 2); ``loss`` = MLM + SOP, only when both label sets are given."""

    loss: Tensor | None = None
    prediction_logits: Tensor | None = None
    sop_logits: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


class AlbertMLMHead(nn.Module):
    """``dense (H → E)`` → activation → ``LayerNorm(E)`` → ``decoder (E → V)``; keys ``predictions.*``."""

    def __init__(self, spec: Any) -> None:
        super().__init__()
        width = embedding_width(spec)
        self.LayerNorm = nn.LayerNorm(width, eps=spec.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(spec.vocab_size))
        self.dense = nn.Linear(spec.hidden_size, width)
        self.decoder = nn.Linear(width, spec.vocab_size)
        self.activation = get_activation(spec.hidden_act)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.decoder(self.LayerNorm(self.activation(self.dense(hidden_states))))  # type: ignore[no-any-return]

    def _init_bertzoo_weights(self, spec: Any) -> None:
        with torch.no_grad():  # transformers zeroes the MLM bias
            self.bias.zero_()


class _AlbertMLM(BertHead):
    """Owns ``predictions`` (tied as transformers ties it) and serves fill-mask."""

    per_token_outputs: ClassVar[bool] = True
    head_name: ClassVar[str] = "masked-lm"  # in error messages

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.predictions = AlbertMLMHead(spec)
        self.tie_weights()

    def tie_weights(self) -> None:
        tie_mlm_decoder(self, self.predictions, self.spec)  # type: ignore[arg-type]

    # -- task "fill-mask" (bertzoo.interfaces.FillMaskTask) ----------------------------------------
    def mask_logits(self, states: TaskStates, positions: Tensor) -> Tensor:
        """``(M, V)`` vocabulary logits at the True ``positions`` (shaped like ``states.input_ids``)."""
        return mask_position_logits(self.predictions, states, positions, self.head_name,  # type: ignore[arg-type]
                                    self.spec.hidden_size)

    def _mlm(self, input_ids: Tensor | None, labels: Tensor | None, kwargs: dict[str, Any]) -> tuple[Any, Tensor, Tensor | None]:
        """Trunk call, vocabulary logits (B, S, V) and the checked MLM labels."""
        out = self.run_bert(input_ids=input_ids, **kwargs)
        logits = self.predictions(out.last_hidden_state)
        if labels is not None:
            labels = check_class_labels(labels, "labels", tuple(logits.shape[:2]), self.head_name)
        return out, logits, labels


class AlbertForMaskedLM(_AlbertMLM):
    """HF ``AlbertForMaskedLM``; the trunk has no pooler."""

    uses_pooler: ClassVar[bool] = False

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, labels: Tensor | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> MaskedLMOutput | tuple[Tensor, ...]:
        """Args: ids (B, S) or embeds (B, S, E); ``labels`` (B, S) token ids, -100 = not masked.

        Raises:
            InputError: labels of the wrong shape or dtype.
        """
        out, logits, labels = self._mlm(input_ids, labels, dict(
            attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds, **kwargs))
        loss = token_cross_entropy(logits, labels, self.spec.vocab_size) if labels is not None else None
        return finish(
            MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions),
            return_dict,
        )


class AlbertSOPHead(nn.Module):
    """``sop_classifier``: dropout(``classifier_dropout_prob``) → ``classifier: Linear(H, 2)``."""

    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.dropout = nn.Dropout(classifier_dropout(spec))
        self.classifier = nn.Linear(spec.hidden_size, 2)

    def forward(self, pooled_output: Tensor) -> Tensor:
        return self.classifier(self.dropout(pooled_output))  # type: ignore[no-any-return]


class AlbertForPreTraining(_AlbertMLM):
    """HF ``AlbertForPreTraining``: MLM + sentence-order prediction on the pooled output."""

    uses_pooler: ClassVar[bool] = True
    head_name: ClassVar[str] = "pretraining"

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.sop_classifier = AlbertSOPHead(spec)

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, labels: Tensor | None = None,
                sentence_order_label: Tensor | None = None, return_dict: bool | None = None, **kwargs: Any
                ) -> AlbertForPreTrainingOutput | tuple[Tensor, ...]:
        """Args: ids (B, S); ``labels`` (B, S) MLM targets, -100 = not masked;
        ``sentence_order_label`` (B,): 0 = original order, 1 = swapped.

        Raises:
            InputError: labels of the wrong shape or dtype.
        """
        out, logits, labels = self._mlm(input_ids, labels, dict(
            attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds, **kwargs))
        sop_logits = self.sop_classifier(out.pooler_output)  # (B, 2)
        if sentence_order_label is not None:
            sentence_order_label = check_class_labels(
                sentence_order_label, "sentence_order_label", (sop_logits.shape[0],), "pretraining")
        loss = None
        if labels is not None and sentence_order_label is not None:
            loss = token_cross_entropy(logits, labels, self.spec.vocab_size) + F.cross_entropy(
                sop_logits.view(-1, 2), sentence_order_label.view(-1))
        return finish(
            AlbertForPreTrainingOutput(loss=loss, prediction_logits=logits, sop_logits=sop_logits,
                                       hidden_states=out.hidden_states, attentions=out.attentions),
            return_dict,
        )


# -- BERT's heads under ALBERT's names (the math is the same on ALBERT's trunk) -------------------------
class AlbertForSequenceClassification(BertForSequenceClassification):
    """HF ``AlbertForSequenceClassification``: pooler → dropout(classifier_dropout_prob) → classifier."""


class AlbertForMultipleChoice(BertForMultipleChoice):
    """HF ``AlbertForMultipleChoice``: pooler → dropout(classifier_dropout_prob) → classifier (H → 1)."""


class AlbertForTokenClassification(BertForTokenClassification):
    """HF ``AlbertForTokenClassification``: dropout → classifier on every token."""


class AlbertForQuestionAnswering(BertForQuestionAnswering):
    """HF ``AlbertForQuestionAnswering``: qa_outputs on every token, no dropout."""
