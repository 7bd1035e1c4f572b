"""RoBERTa's heads (XLM-RoBERTa uses the same classes): transformers' ``Roberta*`` / ``XLMRoberta*``.

What differs from BERT's heads (``models/roberta/modeling_roberta.py``); the forwards, losses,
outputs and task contracts are the BERT heads' (subclassed, not copied):

- ``masked-lm`` / ``causal-lm``: ``lm_head`` (:class:`RobertaLMHead`): ``dense`` → exact erf GELU
  (whatever ``hidden_act`` says) → ``layer_norm`` → ``decoder``, plus ``lm_head.bias``; the
  decoder is tied to the word embeddings and its bias to ``lm_head.bias`` (neither is saved).
- ``sequence-classification``: ``classifier`` (:class:`FirstTokenClassificationHead`): token 0 →
  dropout → ``dense`` → tanh → dropout → ``out_proj``; the trunk has no pooler.
- ``multiple-choice`` keeps the pooler and drops with ``hidden_dropout_prob``.
- ``token-classification`` / ``question-answering`` are BERT's classes (same keys and math).

The BERT heads call ``self.cls(hidden)`` for vocabulary logits and feed ``pooler_output`` to
their classifier; the subclasses here point ``cls`` at ``lm_head`` and hand the first token's
state over as the pooled output (:func:`first_token_output`), which is exactly what
transformers' RoBERTa classifier reads.

Shape legend: ``B`` batch, ``S`` sequence length, ``H`` hidden size, ``V`` vocabulary, ``L`` labels.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertzoo.heads.base import BertHead, check_pooled, check_states, classifier_dropout
from bertzoo.heads.classification import BertForMultipleChoice, BertForSequenceClassification
from bertzoo.heads.language_modeling import (
    BertForMaskedLM,
    BertLMHeadModel,
    mask_position_logits,
    tie_mlm_decoder,
)
from bertzoo.heads.pooling import pool
from bertzoo.interfaces import TaskStates

logger = logging.getLogger(__name__)


class RobertaLMHead(nn.Module):
    """``lm_head``: dense → erf GELU → layer_norm → decoder, (B, S, H) → (B, S, V).
    Keys ``dense.*``, ``layer_norm.*``, ``decoder.*`` (tied, not saved), ``bias``."""

    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.dense = nn.Linear(spec.hidden_size, spec.hidden_size)
        self.layer_norm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        self.decoder = nn.Linear(spec.hidden_size, spec.vocab_size)
        self.bias = nn.Parameter(torch.zeros(spec.vocab_size))

    def forward(self, features: Tensor) -> Tensor:
        return self.decoder(self.layer_norm(F.gelu(self.dense(features))))  # type: ignore[no-any-return]

    def _init_bertzoo_weights(self, spec: Any) -> None:
        with torch.no_grad():
            self.bias.zero_()  # transformers zeroes the LM bias


class _LMHeadMixin:
    """``lm_head`` in place of BERT's ``cls``: the BERT LM forwards call ``self.cls(hidden)``."""

    lm_head: RobertaLMHead
    spec: Any

    def _build_lm_head(self, spec: Any) -> None:
        self.lm_head = RobertaLMHead(spec)
        tie_mlm_decoder(self, self.lm_head, spec)

    @property
    def cls(self) -> RobertaLMHead:
        return self.lm_head

    def tie_weights(self) -> None:
        tie_mlm_decoder(self, self.lm_head, self.spec)


class RobertaForMaskedLM(_LMHeadMixin, BertForMaskedLM):
    """Masked language model (transformers' ``RobertaForMaskedLM``); no pooler."""

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        BertHead.__init__(self, bert, spec, **options)
        if spec.is_decoder:
            logger.warning("masked-lm expects is_decoder=False (bidirectional attention); this spec is a decoder")
        self._build_lm_head(spec)

    def mask_logits(self, states: TaskStates, positions: Tensor) -> Tensor:
        """``(M, V)`` vocabulary logits at the True ``positions`` (shaped like ``states.input_ids``)."""
        return mask_position_logits(self.lm_head, states, positions, "masked-lm", self.spec.hidden_size)  # type: ignore[arg-type]


class RobertaForCausalLM(_LMHeadMixin, BertLMHeadModel):
    """Left-to-right language model (transformers' ``RobertaForCausalLM``); no pooler."""

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        BertHead.__init__(self, bert, spec, **options)
        if not spec.is_decoder:
            logger.warning("causal-lm on a spec with is_decoder=False attends both ways; set is_decoder=True")
        self._build_lm_head(spec)


# -- classification on the first token -----------------------------------------------------------------
class FirstTokenClassificationHead(nn.Module):
    """``classifier``: first token → dropout → dense → activation → dropout → out_proj.

    RoBERTa's (tanh) and ELECTRA's (erf GELU) ``*ClassificationHead``. Keys ``dense.*``,
    ``out_proj.*``. :meth:`forward` takes ``(B, H)`` first-token states → ``(B, L)``.
    """

    def __init__(self, spec: Any, num_labels: int, activation: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.dense = nn.Linear(spec.hidden_size, spec.hidden_size)
        self.dropout = nn.Dropout(classifier_dropout(spec))
        self.activation = activation
        self.out_proj = nn.Linear(spec.hidden_size, num_labels)

    def forward(self, first: Tensor) -> Tensor:
        x = self.activation(self.dense(self.dropout(first)))
        return self.out_proj(self.dropout(x))  # type: ignore[no-any-return]


def first_token_output(out: Any) -> Any:
    """The trunk output with ``pooler_output`` = each row's token 0 (position 0, as transformers)."""
    return dataclasses.replace(out, pooler_output=out.last_hidden_state[:, 0])


def first_tokens(states: TaskStates, head: str, hidden_size: int) -> Tensor:
    """``(B, H)`` first-token states of padded (position 0) or packed (each sequence's first row) states."""
    hidden = check_states(states, head, hidden_size)
    first = pool(hidden, "cls", cu_seqlens=states.cu_seqlens)
    return check_pooled(first, states, head, hidden_size)


class FirstTokenSequenceClassification(BertForSequenceClassification):
    """BERT's sequence classifier (loss rules, outputs, task contract) on the first token's state,
    through :class:`FirstTokenClassificationHead` with ``activation``; the trunk has no pooler."""

    uses_pooler: ClassVar[bool] = False
    classifier_keys: ClassVar[tuple[str, ...]] = ("classifier.out_proj.weight", "classifier.out_proj.bias")
    activation: ClassVar[Callable[[Tensor], Tensor]] = staticmethod(torch.tanh)  # type: ignore[assignment]

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        BertHead.__init__(self, bert, spec, **options)
        self.dropout = nn.Identity()  # the classifier drops out itself, twice
        self.classifier = FirstTokenClassificationHead(spec, self.num_labels, type(self).activation)

    def run_bert(self, **kwargs: Any) -> Any:
        return first_token_output(super().run_bert(**kwargs))

    def classify_states(self, states: TaskStates) -> Tensor:
        """``(B, L)`` logits from packed or padded states (each sequence's first token)."""
        return self.classifier(first_tokens(states, "sequence-classification", self.spec.hidden_size))  # type: ignore[no-any-return]


class RobertaForSequenceClassification(FirstTokenSequenceClassification):
    """transformers' ``RobertaForSequenceClassification``: dense → tanh → out_proj on token 0."""


class RobertaForMultipleChoice(BertForMultipleChoice):
    """transformers' ``RobertaForMultipleChoice``: BERT's, but the dropout rate is ``hidden_dropout_prob``."""

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.dropout = nn.Dropout(spec.hidden_dropout_prob)
