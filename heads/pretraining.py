"""BERT's pretraining heads: ``pretraining`` (MLM + NSP, BertForPreTraining) and
``next-sentence`` (BertForNextSentencePrediction). Both keep the trunk's pooler: the NSP layer
``cls.seq_relationship: Linear(H, 2)`` reads the pooled output.

Shape legend: ``B`` batch, ``S`` sequence length, ``H`` hidden size, ``V`` vocabulary size.
NSP labels: 0 = sentence B follows A, 1 = B is random.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from bertzoo.heads.base import BertHead, check_class_labels, finish
from bertzoo.heads.language_modeling import (
    BertLMPredictionHead,
    mask_position_logits,
    tie_mlm_decoder,
    token_cross_entropy,
)
from bertzoo.heads.outputs import NextSentencePredictorOutput, PreTrainingOutput
from bertzoo.interfaces import TaskStates


class BertPreTrainingHeads(nn.Module):
    """``cls`` of BertForPreTraining: ``predictions`` (MLM) and ``seq_relationship`` (NSP)."""

    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(spec)
        self.seq_relationship = nn.Linear(spec.hidden_size, 2)

    def forward(self, sequence_output: Tensor, pooled_output: Tensor) -> tuple[Tensor, Tensor]:
        return self.predictions(sequence_output), self.seq_relationship(pooled_output)


class BertOnlyNSPHead(nn.Module):
    """``cls`` of BertForNextSentencePrediction: ``seq_relationship`` only."""

    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.seq_relationship = nn.Linear(spec.hidden_size, 2)

    def forward(self, pooled_output: Tensor) -> Tensor:
        return self.seq_relationship(pooled_output)


class BertForPreTraining(BertHead):
    """MLM + NSP (HF ``BertForPreTraining``). The loss is the unweighted sum of both, and only
    exists when both ``labels`` and ``next_sentence_label`` are given (HF's rule)."""

    uses_pooler: ClassVar[bool] = True
    per_token_outputs: ClassVar[bool] = True

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.cls = BertPreTrainingHeads(spec)
        tie_mlm_decoder(self, self.cls.predictions, spec)

    def tie_weights(self) -> None:
        tie_mlm_decoder(self, self.cls.predictions, self.spec)

    # -- task "fill-mask" (bertzoo.interfaces.FillMaskTask): the MLM half -------------------------
    def mask_logits(self, states: TaskStates, positions: Tensor) -> Tensor:
        """``(M, V)`` vocabulary logits at the True ``positions`` (shaped like ``states.input_ids``)."""
        return mask_position_logits(self.cls.predictions, states, positions, "pretraining", self.spec.hidden_size)

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, labels: Tensor | None = None,
                next_sentence_label: Tensor | None = None, return_dict: bool | None = None, **kwargs: Any
    ) -> PreTrainingOutput | tuple[Tensor, ...]:
        """Args: ids (B, S); ``labels`` (B, S) MLM targets, -100 = not masked;
        ``next_sentence_label`` (B,) in {0, 1}.

        Raises:
            InputError: labels of the wrong shape or dtype.
        """
        out = self.run_bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs,
        )
        prediction_logits, nsp_logits = self.cls(out.last_hidden_state, out.pooler_output)
        batch, seq = prediction_logits.shape[:2]
        if labels is not None:
            labels = check_class_labels(labels, "labels", (batch, seq), "pretraining")
        if next_sentence_label is not None:
            next_sentence_label = check_class_labels(next_sentence_label, "next_sentence_label", (batch,), "pretraining")
        loss = None
        if labels is not None and next_sentence_label is not None:
            mlm_loss = token_cross_entropy(prediction_logits, labels, self.spec.vocab_size)
            nsp_loss = F.cross_entropy(nsp_logits.view(-1, 2), next_sentence_label.view(-1))
            loss = mlm_loss + nsp_loss
        return finish(
            PreTrainingOutput(
                loss=loss, prediction_logits=prediction_logits, seq_relationship_logits=nsp_logits,
                hidden_states=out.hidden_states, attentions=out.attentions,
            ),
            return_dict,
        )


class BertForNextSentencePrediction(BertHead):
    """Is sentence B the continuation of A? (HF ``BertForNextSentencePrediction``)."""

    uses_pooler: ClassVar[bool] = True

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.cls = BertOnlyNSPHead(spec)

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, labels: Tensor | None = None,
                return_dict: bool | None = None, **kwargs: Any
    ) -> NextSentencePredictorOutput | tuple[Tensor, ...]:
        """Args: a sentence pair (B, S) with token types; ``labels`` (B,): 0 = follows, 1 = random.

        Raises:
            InputError: labels of the wrong shape or dtype.
        """
        out = self.run_bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs,
        )
        logits = self.cls(out.pooler_output)  # (B, 2)
        loss = None
        if labels is not None:
            labels = check_class_labels(labels, "labels", (logits.shape[0],), "next-sentence")
            loss = F.cross_entropy(logits.view(-1, 2), labels.view(-1))
        return finish(
            NextSentencePredictorOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions),
            return_dict,
        )
