"""Output dataclasses of the heads: HF's field names and HF's tuple order.

They share the trunk's :class:`bertzoo.model.ModelOutput`: ``return_dict=False`` gives
``to_tuple()``, the fields that are not None in field order, exactly as transformers'
``ModelOutput.to_tuple`` does (an empty ``()`` is kept); integer indexing follows the same
order, string indexing reads a field.

Shape legend: ``B`` batch, ``S`` sequence length, ``H`` hidden size, ``V`` vocabulary size,
``C`` choices, ``L`` num_labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from bertzoo.model import ModelOutput


@dataclass(eq=False)
class MaskedLMOutput(ModelOutput):
    """masked-lm. ``logits`` (B, S, V)."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass(eq=False)
class CausalLMOutput(ModelOutput):
    """causal-lm (HF ``CausalLMOutputWithCrossAttentions``). ``logits`` (B, S_kept, V).

    The cache field keeps the seed's name ``past_key_values``; ``cache`` (transformers 5's
    name) reads the same value.
    """

    loss: Tensor | None = None
    logits: Tensor | None = None
    past_key_values: Any = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None
    cross_attentions: tuple[Tensor, ...] | None = None

    @property
    def cache(self) -> Any:
        return self.past_key_values


@dataclass(eq=False)
class PreTrainingOutput(ModelOutput):
    """pretraining (HF ``BertForPreTrainingOutput``). ``prediction_logits`` (B, S, V),
    ``seq_relationship_logits`` (B, 2); ``loss`` = MLM + NSP, only when both label sets are given."""

    loss: Tensor | None = None
    prediction_logits: Tensor | None = None
    seq_relationship_logits: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass(eq=False)
class NextSentencePredictorOutput(ModelOutput):
    """next-sentence. ``logits`` (B, 2): index 0 = B follows A, 1 = B is random."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass(eq=False)
class SequenceClassifierOutput(ModelOutput):
    """sequence-classification. ``logits`` (B, L)."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass(eq=False)
class MultipleChoiceModelOutput(ModelOutput):
    """multiple-choice. ``logits`` (B, C); hidden states and attentions are in the flattened
    (B·C, ...) shape, as HF returns them."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass(eq=False)
class TokenClassifierOutput(ModelOutput):
    """token-classification. ``logits`` (B, S, L)."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass(eq=False)
class QuestionAnsweringModelOutput(ModelOutput):
    """question-answering. ``start_logits``, ``end_logits`` (B, S)."""

    loss: Tensor | None = None
    start_logits: Tensor | None = None
    end_logits: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass(eq=False)
class SentenceEmbeddingOutput(ModelOutput):
    """sentence-embedding, with sentence-transformers' feature names.

    ``sentence_embedding`` (B, H) pooled (and L2-normalised when the head says so);
    ``token_embeddings`` (B, S, H) the trunk's last hidden state.
    """

    sentence_embedding: Tensor | None = None
    token_embeddings: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None
