"""ELECTRA's heads: transformers' ``Electra*`` classes (``models/electra/modeling_electra.py``).

- ``pretraining`` (``ElectraForPreTraining``, the discriminator): ``discriminator_predictions``
  = dense → ``hidden_act`` → ``dense_prediction`` (H → 1): one replaced-token logit per token;
  BCE-with-logits loss over the positions whose mask is 1 (all positions without a mask).
- ``masked-lm`` / ``causal-lm`` (the generator): ``generator_predictions`` = dense (H → E) →
  erf GELU → LayerNorm(E), then ``generator_lm_head: Linear(E, V)`` whose weight is tied to the
  E-wide word embeddings (not saved) and whose bias is its own (saved).
- ``sequence-classification``: RoBERTa's first-token classifier with erf GELU instead of tanh.
- ``multiple-choice``: ``sequence_summary`` (first token → ``summary: Linear(H, H)`` → GELU →
  dropout ``summary_last_dropout``) → ``classifier: Linear(H, 1)``; no pooler anywhere in ELECTRA.
- ``token-classification`` / ``question-answering``: BERT's classes (same keys and math).

Shape legend: ``B`` batch, ``S`` sequence length, ``H`` hidden, ``E`` embedding size, ``V`` vocabulary.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from bertzoo.errors import InputError
from bertzoo.heads.base import BertHead, check_float_labels, check_positions, check_states, finish
from bertzoo.heads.classification import BertForMultipleChoice
from bertzoo.heads.electra_options import SequenceSummaryOptions
from bertzoo.heads.language_modeling import BertForMaskedLM, BertLMHeadModel
from bertzoo.heads.roberta import FirstTokenSequenceClassification
from bertzoo.interfaces import TaskStates
from bertzoo.model import ModelOutput
from bertzoo.plugins.activations import get_activation
from bertzoo.plugins.electra import embedding_width

logger = logging.getLogger(__name__)


# -- discriminator -------------------------------------------------------------------------------------
class ElectraDiscriminatorPredictions(nn.Module):
    """dense → ``hidden_act`` → dense_prediction, (B, S, H) → (B, S) logits."""

    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.dense = nn.Linear(spec.hidden_size, spec.hidden_size)
        self.activation = get_activation(spec.hidden_act)
        self.dense_prediction = nn.Linear(spec.hidden_size, 1)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.dense_prediction(self.activation(self.dense(hidden_states))).squeeze(-1)  # type: ignore[no-any-return]


@dataclass(eq=False)
class ElectraForPreTrainingOutput(ModelOutput):
    """pretraining (discriminator). ``logits`` (B, S): > 0 means "replaced"."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


class ElectraForPreTraining(BertHead):
    """The replaced-token discriminator (transformers' ``ElectraForPreTraining``); no pooler."""

    uses_pooler: ClassVar[bool] = False
    per_token_outputs: ClassVar[bool] = True

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.discriminator_predictions = ElectraDiscriminatorPredictions(spec)

    def replaced_logits(self, states: TaskStates) -> Tensor:
        """Replaced-token logits per token: ``(T,)`` from packed states, ``(B, S)`` from padded ones."""
        hidden = check_states(states, "pretraining", self.spec.hidden_size)
        return self.discriminator_predictions(hidden)  # type: ignore[no-any-return]

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, labels: Tensor | None = None,
                return_dict: bool | None = None, **kwargs: Any
    ) -> ElectraForPreTrainingOutput | tuple[Tensor, ...]:
        """Args: ids (B, S); ``labels`` (B, S): 1 = replaced token, 0 = original (any dtype; read as float).

        Raises:
            InputError: labels of the wrong shape.
        """
        out = self.run_bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs,
        )
        logits = self.discriminator_predictions(out.last_hidden_state)  # (B, S)
        loss = None
        if labels is not None:
            if not isinstance(labels, Tensor) or tuple(labels.shape) != tuple(logits.shape):
                got = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
                raise InputError(f"pretraining: labels must be a tensor of shape {tuple(logits.shape)} "
                                 f"(1 = replaced token), got {got}")
            labels = check_float_labels(labels.float(), "labels", (tuple(logits.shape),), "pretraining",
                                        "replaced-token targets")
            if attention_mask is not None and attention_mask.dim() == 2:
                active = attention_mask.view(-1, logits.shape[1]) == 1  # only real tokens count
                loss = F.binary_cross_entropy_with_logits(logits[active], labels[active])
            else:
                loss = F.binary_cross_entropy_with_logits(logits, labels)
        return finish(ElectraForPreTrainingOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                                  attentions=out.attentions), return_dict)


# -- generator -----------------------------------------------------------------------------------------
class ElectraGeneratorPredictions(nn.Module):
    """dense (H → E) → erf GELU → LayerNorm(E). Keys ``LayerNorm.*``, ``dense.*`` (transformers' order)."""

    def __init__(self, spec: Any) -> None:
        super().__init__()
        width = embedding_width(spec)
        self.LayerNorm = nn.LayerNorm(width, eps=spec.layer_norm_eps)
        self.dense = nn.Linear(spec.hidden_size, width)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.LayerNorm(F.gelu(self.dense(hidden_states)))  # type: ignore[no-any-return]


class _GeneratorMixin:
    """``generator_predictions`` + ``generator_lm_head`` in place of BERT's ``cls``."""

    bert: nn.Module
    spec: Any
    generator_predictions: ElectraGeneratorPredictions
    generator_lm_head: nn.Linear

    def _build_generator(self, spec: Any) -> None:
        self.generator_predictions = ElectraGeneratorPredictions(spec)
        self.generator_lm_head = nn.Linear(embedding_width(spec), spec.vocab_size)
        self.tie_weights()

    def tie_weights(self) -> None:
        # only the weight is tied; the bias is the head's own (saved)
        if self.spec.tie_word_embeddings:
            self.generator_lm_head.weight = self.bert.embeddings.word_embeddings.weight  # type: ignore[union-attr]

    def _vocab_logits(self, hidden: Tensor) -> Tensor:
        return self.generator_lm_head(self.generator_predictions(hidden))  # type: ignore[no-any-return]

    @property
    def cls(self) -> Any:
        return self._vocab_logits  # what the BERT LM forwards call


class ElectraForMaskedLM(_GeneratorMixin, BertForMaskedLM):
    """The generator (transformers' ``ElectraForMaskedLM``); no pooler."""

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        BertHead.__init__(self, bert, spec, **options)
        self._build_generator(spec)

    def mask_logits(self, states: TaskStates, positions: Tensor) -> Tensor:
        """``(M, V)`` vocabulary logits at the True ``positions`` (shaped like ``states.input_ids``)."""
        hidden = check_states(states, "masked-lm", self.spec.hidden_size)
        return self._vocab_logits(hidden[check_positions(positions, states, "masked-lm")])


class ElectraForCausalLM(_GeneratorMixin, BertLMHeadModel):
    """Left-to-right generator (transformers' ``ElectraForCausalLM``); no pooler."""

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        BertHead.__init__(self, bert, spec, **options)
        if not spec.is_decoder:
            logger.warning("causal-lm on a spec with is_decoder=False attends both ways; set is_decoder=True")
        self._build_generator(spec)


# -- classifiers ---------------------------------------------------------------------------------------
class ElectraForSequenceClassification(FirstTokenSequenceClassification):
    """transformers' ``ElectraForSequenceClassification``: dense → erf GELU → out_proj on token 0."""

    activation = staticmethod(F.gelu)


class ElectraSequenceSummary(nn.Module):
    """``sequence_summary``: first / last / mean token → ``summary`` (Linear or identity) → activation
    → dropout. ``mean`` averages every position, padding included (transformers' rule)."""

    def __init__(self, spec: Any, options: SequenceSummaryOptions) -> None:
        super().__init__()
        self.summary_type = options.summary_type
        self.summary: nn.Module = nn.Linear(spec.hidden_size, spec.hidden_size) if options.summary_use_proj \
            else nn.Identity()
        self.activation = get_activation(options.summary_activation) if options.summary_activation else nn.Identity()
        self.last_dropout = nn.Dropout(options.summary_last_dropout)

    def forward(self, hidden_states: Tensor) -> Tensor:
        if self.summary_type == "first":
            x = hidden_states[:, 0]
        elif self.summary_type == "last":
            x = hidden_states[:, -1]
        else:
            x = hidden_states.mean(dim=1)
        return self.last_dropout(self.activation(self.summary(x)))  # type: ignore[no-any-return]


class ElectraForMultipleChoice(BertForMultipleChoice):
    """transformers' ``ElectraForMultipleChoice``: BERT's forward with ``sequence_summary`` in place
    of the pooler (and no other dropout). Options: the ``summary_*`` fields of ELECTRA's config."""

    uses_pooler: ClassVar[bool] = False
    options_model = SequenceSummaryOptions

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.dropout = nn.Identity()
        self.sequence_summary = ElectraSequenceSummary(spec, self.options)  # type: ignore[arg-type]
        # "last" and "mean" read padded positions: run the trunk padded so they hold transformers' values
        self.per_token_outputs = self.options.summary_type != "first"  # type: ignore[union-attr,misc]

    def run_bert(self, **kwargs: Any) -> Any:
        out = super().run_bert(**kwargs)
        return dataclasses.replace(out, pooler_output=self.sequence_summary(out.last_hidden_state))

    @classmethod
    def options_from_hf_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        return {k: config[k] for k in SequenceSummaryOptions.model_fields if k in config}

    @classmethod
    def hf_config_from_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        return SequenceSummaryOptions.model_validate(dict(options)).model_dump(mode="json")

