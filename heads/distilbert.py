"""DistilBERT's heads (transformers' ``DistilBertFor*``), on the shared BERT head code.

- ``masked-lm``: ``vocab_transform`` → ``activation`` → ``vocab_layer_norm`` (eps 1e-12) →
  ``vocab_projector``, whose weight is the word-embedding matrix (tied, not saved) and whose bias
  is its own (saved). CE(-100) loss.
- ``sequence-classification`` / ``multiple-choice``: token 0 → ``pre_classifier`` → ReLU →
  dropout(``seq_classif_dropout``) → ``classifier``. The trunk has no pooler: the head's
  :meth:`_FirstTokenPreClassifier.run_bert` puts ``ReLU(pre_classifier(token 0))`` where the
  BERT heads read the pooled output, so their forward, losses and checks are reused as they are.
- ``token-classification``: dropout(``dropout``) → ``classifier`` (BERT's head; the spec's
  ``classifier_dropout`` is None for DistilBERT, so it falls back to ``hidden_dropout_prob``).
- ``question-answering``: dropout(``qa_dropout``) → ``qa_outputs``; ``num_labels`` must be 2.

``seq_classif_dropout`` and ``qa_dropout`` are head options read from / written to config.json.
One deliberate difference: multiple-choice flattens ``position_ids`` (B, C, S) like the other
inputs, where transformers passes them unflattened (and fails on them).

Shape legend: B batch, C choices, S sequence, H hidden, V vocabulary, L labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from bertzoo.heads.base import (
    BertHead,
    check_class_labels,
    check_pooled,
    check_positions,
    check_states,
    finish,
)
from bertzoo.heads.classification import (
    BertForMultipleChoice,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from bertzoo.heads.language_modeling import token_cross_entropy
from bertzoo.heads.options import QuestionAnsweringOptions, SequenceClassificationOptions
from bertzoo.heads.outputs import MaskedLMOutput
from bertzoo.heads.pooling import pool
from bertzoo.heads.question_answering import BertForQuestionAnswering
from bertzoo.interfaces import TaskStates
from bertzoo.plugins.activations import get_activation
from bertzoo.plugins.distilbert import EPS

SEQ_CLASSIF_DROPOUT = Field(0.2, ge=0.0, le=1.0, allow_inf_nan=False, description="dropout before the classifier (config.json's seq_classif_dropout)")


class DistilBertSequenceClassificationOptions(SequenceClassificationOptions):
    """Options of ``distilbert.sequence-classification``."""

    seq_classif_dropout: float = SEQ_CLASSIF_DROPOUT


class DistilBertMultipleChoiceOptions(BaseModel):
    """Options of ``distilbert.multiple-choice``."""

    model_config = ConfigDict(extra="forbid")

    seq_classif_dropout: float = SEQ_CLASSIF_DROPOUT


class DistilBertQuestionAnsweringOptions(QuestionAnsweringOptions):
    """Options of ``distilbert.question-answering``."""

    qa_dropout: float = Field(0.1, ge=0.0, le=1.0, allow_inf_nan=False, description="dropout before qa_outputs (config.json's qa_dropout)")


class _DropoutInConfig:
    """A head whose dropout option ``dropout_key`` is also a config.json entry (read and written)."""

    dropout_key: ClassVar[str]
    options_model: ClassVar[type[BaseModel] | None]

    @classmethod
    def options_from_hf_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = super().options_from_hf_config(config)  # type: ignore[misc]
        if config.get(cls.dropout_key) is not None:
            options[cls.dropout_key] = float(config[cls.dropout_key])
        return options

    @classmethod
    def hf_config_from_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        config: dict[str, Any] = dict(super().hf_config_from_options(options))  # type: ignore[misc]
        assert cls.options_model is not None
        config[cls.dropout_key] = getattr(cls.options_model.model_validate(dict(options)), cls.dropout_key)
        return config


# -- masked-lm ------------------------------------------------------------------------------------------
class DistilBertForMaskedLM(BertHead):
    """HF ``DistilBertForMaskedLM``; the trunk has no pooler."""

    uses_pooler: ClassVar[bool] = False
    per_token_outputs: ClassVar[bool] = True

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.activation = get_activation(spec.hidden_act)
        self.vocab_transform = nn.Linear(spec.hidden_size, spec.hidden_size)
        self.vocab_layer_norm = nn.LayerNorm(spec.hidden_size, eps=EPS)
        self.vocab_projector = nn.Linear(spec.hidden_size, spec.vocab_size)
        self.tie_weights()

    def tie_weights(self) -> None:
        """The projector's weight is the word-embedding matrix (its bias stays its own)."""
        if self.spec.tie_word_embeddings:
            self.vocab_projector.weight = self.bert.embeddings.word_embeddings.weight

    def vocab_logits(self, hidden: Tensor) -> Tensor:
        """``(..., H)`` → ``(..., V)``."""
        return self.vocab_projector(self.vocab_layer_norm(self.activation(self.vocab_transform(hidden))))  # type: ignore[no-any-return]

    # -- task "fill-mask" (bertzoo.interfaces.FillMaskTask) ----------------------------------------
    def mask_logits(self, states: TaskStates, positions: Tensor) -> Tensor:
        """``(M, V)`` vocabulary logits at the True ``positions`` (shaped like ``states.input_ids``)."""
        hidden = check_states(states, "masked-lm", self.spec.hidden_size)
        return self.vocab_logits(hidden[check_positions(positions, states, "masked-lm")])

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, labels: Tensor | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> MaskedLMOutput | tuple[Tensor, ...]:
        """Args: ids (B, S) or embeds (B, S, H); ``labels`` (B, S) token ids, -100 = not masked.

        Raises:
            InputError: labels of the wrong shape or dtype.
        """
        out = self.run_bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs)
        logits = self.vocab_logits(out.last_hidden_state)  # (B, S, V)
        loss = None
        if labels is not None:
            labels = check_class_labels(labels, "labels", tuple(logits.shape[:2]), "masked-lm")
            loss = token_cross_entropy(logits, labels, self.spec.vocab_size)
        return finish(
            MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions),
            return_dict,
        )


# -- classification on token 0 -------------------------------------------------------------------------
class _FirstTokenPreClassifier(BertHead):
    """``pre_classifier`` + ReLU on token 0, served as the trunk's pooled output; dropout(seq_classif_dropout)."""

    uses_pooler: ClassVar[bool] = False

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.pre_classifier = nn.Linear(spec.hidden_size, spec.hidden_size)
        self.dropout = nn.Dropout(self.options.seq_classif_dropout)  # type: ignore[union-attr]

    def pre_classify(self, first: Tensor) -> Tensor:
        """``(B, H)`` first-token states → ``ReLU(pre_classifier(·))`` ``(B, H)``."""
        return F.relu(self.pre_classifier(first))

    def run_bert(self, **kwargs: Any) -> Any:
        out = super().run_bert(**kwargs)
        out.pooler_output = self.pre_classify(out.last_hidden_state[:, 0])  # where the BERT heads read it
        return out


class DistilBertForSequenceClassification(_DropoutInConfig, _FirstTokenPreClassifier, BertForSequenceClassification):
    """HF ``DistilBertForSequenceClassification``: BERT's losses and problem types."""

    options_model = DistilBertSequenceClassificationOptions
    dropout_key = "seq_classif_dropout"

    def classify_states(self, states: TaskStates) -> Tensor:
        """``(B, L)`` logits from packed or padded states (each sequence's first token)."""
        hidden = check_states(states, "sequence-classification", self.spec.hidden_size)
        pooled = self.pre_classify(pool(hidden, "cls", cu_seqlens=states.cu_seqlens))
        pooled = check_pooled(pooled, states, "sequence-classification", self.spec.hidden_size)
        return self.classifier(self.dropout(pooled))  # type: ignore[no-any-return]


class DistilBertForMultipleChoice(_DropoutInConfig, _FirstTokenPreClassifier, BertForMultipleChoice):
    """HF ``DistilBertForMultipleChoice``: (B, C, S) flattened, one score per choice."""

    options_model = DistilBertMultipleChoiceOptions
    dropout_key = "seq_classif_dropout"


# -- per-token heads ------------------------------------------------------------------------------------
class DistilBertForTokenClassification(BertForTokenClassification):
    """HF ``DistilBertForTokenClassification``: dropout(``dropout``) → ``classifier``."""


class _DropoutLinear(nn.Linear):
    """A Linear that drops its input first (keys stay ``weight``/``bias``): HF's ``dropout → qa_outputs``."""

    def __init__(self, in_features: int, out_features: int, p: float) -> None:
        super().__init__(in_features, out_features)
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.dropout(x, self.p, self.training))


class DistilBertForQuestionAnswering(_DropoutInConfig, BertForQuestionAnswering):
    """HF ``DistilBertForQuestionAnswering``: dropout(``qa_dropout``) → ``qa_outputs``."""

    options_model = DistilBertQuestionAnsweringOptions
    dropout_key = "qa_dropout"

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.qa_outputs = _DropoutLinear(spec.hidden_size, self.num_labels, self.options.qa_dropout)  # type: ignore[union-attr]
