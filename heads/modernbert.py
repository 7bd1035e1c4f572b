"""ModernBERT's heads: transformers' ``ModernBertFor*`` (``models/modernbert/modeling_modernbert.py``).

Every head runs the trunk's output through the shared prediction ``head``
(:class:`ModernBertPredictionHead`: ``dense`` → ``classifier_activation`` → ``norm``), then:

- ``masked-lm``: ``decoder`` (tied to ``embeddings.tok_embeddings``; its bias is its own and saved).
  With ``sparse_prediction`` and labels, only the labelled positions are predicted (logits ``(N, V)``).
- ``sequence-classification``: pooled by ``classifier_pooling`` (``cls``: position 0; ``mean``: sum
  over the mask / its count, no epsilon, as transformers) → head → dropout → ``classifier`` (with bias).
- ``multiple-choice``: as above on (B·C) rows, ``cls`` = the first real token (argmax of the mask).
- ``token-classification``: head → dropout → ``classifier`` per token.
- ``question-answering``: head → dropout → ``classifier`` (start, end): key ``classifier``, not ``qa_outputs``.

The forwards, losses, outputs and task contracts are the BERT heads' (subclassed): each head feeds
them the prediction head's output in place of the pooler output / last hidden state
(:meth:`run_bert`), which is exactly where transformers' ModernBERT applies it. The options (config.json
names) are in :mod:`bertzoo.plugins.register_modernbert`.

Shape legend: ``B`` batch, ``C`` choices, ``S`` sequence, ``H`` hidden, ``V`` vocabulary, ``L`` labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from bertzoo.heads.base import BertHead, check_class_labels, check_positions, check_states, finish
from bertzoo.heads.classification import (
    BertForMultipleChoice,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from bertzoo.heads.language_modeling import token_cross_entropy
from bertzoo.heads.outputs import MaskedLMOutput
from bertzoo.heads.pooling import pool
from bertzoo.heads.question_answering import BertForQuestionAnswering
from bertzoo.interfaces import TaskStates
from bertzoo.plugins.activations import get_activation
from bertzoo.plugins.register_modernbert import (
    MaskedLMOptions,
    MultipleChoiceOptions,
    QuestionAnsweringOptionsMB,
    SequenceClassificationOptionsMB,
    TokenClassificationOptionsMB,
)


class ModernBertPredictionHead(nn.Module):
    """``head``: dense → activation → norm, ``(..., H)`` → ``(..., H)``. Keys ``dense.*``, ``norm.*``."""

    def __init__(self, spec: Any, options: Any) -> None:
        super().__init__()
        self.dense = nn.Linear(spec.hidden_size, spec.hidden_size, bias=options.classifier_bias)
        self.act = get_activation(options.classifier_activation)
        self.norm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps, bias=options.norm_bias)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.norm(self.act(self.dense(hidden_states)))  # type: ignore[no-any-return]


class _ConfigOptions:
    """Head options read from and written to config.json under transformers' names."""

    options_model: ClassVar[Any]

    @classmethod
    def options_from_hf_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        base = super().options_from_hf_config(config)  # type: ignore[misc]
        own = {k: config[k] for k in cls.options_model.model_fields if k in config and config[k] is not None
               and k not in ("num_labels", "id2label", "label2id", "problem_type")}
        return {**base, **own}

    @classmethod
    def hf_config_from_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        base = super().hf_config_from_options(options)  # type: ignore[misc]
        opts = cls.options_model.model_validate(dict(options)).model_dump(mode="json")
        own = {k: v for k, v in opts.items() if k not in ("num_labels", "id2label", "label2id", "problem_type")}
        return {**base, **own}


def mean_pool(hidden: Tensor, attention_mask: Tensor | None) -> Tensor:
    """transformers' ModernBERT mean: ``sum(h · m) / sum(m)`` (no epsilon, no upcast) → ``(B, H)``."""
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], device=hidden.device, dtype=torch.bool)
    return (hidden * attention_mask.unsqueeze(-1)).sum(dim=1) / attention_mask.sum(dim=1, keepdim=True)


def pooled_states(states: TaskStates, mode: str, head: str, hidden_size: int) -> Tensor:
    """``(B, H)`` pooled task states: ``cls`` = each sequence's first token, ``mean`` = the real tokens' mean."""
    hidden = check_states(states, head, hidden_size)
    if states.cu_seqlens is not None:
        return pool(hidden, mode, cu_seqlens=states.cu_seqlens)
    return hidden[:, 0] if mode == "cls" else mean_pool(hidden, states.attention_mask)


# -- masked LM -----------------------------------------------------------------------------------------
class ModernBertForMaskedLM(_ConfigOptions, BertHead):
    """transformers' ``ModernBertForMaskedLM``: ``head`` → ``decoder``; loss in fp32, -100 ignored."""

    uses_pooler: ClassVar[bool] = False
    per_token_outputs: ClassVar[bool] = True
    options_model = MaskedLMOptions

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.head = ModernBertPredictionHead(spec, self.options)
        self.decoder = nn.Linear(spec.hidden_size, spec.vocab_size, bias=self.options.decoder_bias)  # type: ignore[union-attr]
        self.tie_weights()

    def tie_weights(self) -> None:
        if self.spec.tie_word_embeddings:
            self.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def mask_logits(self, states: TaskStates, positions: Tensor) -> Tensor:
        """``(M, V)`` vocabulary logits at the True ``positions`` (shaped like ``states.input_ids``)."""
        hidden = check_states(states, "masked-lm", self.spec.hidden_size)
        positions = check_positions(positions, states, "masked-lm")
        return self.decoder(self.head(hidden[positions]))  # type: ignore[no-any-return]

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, labels: Tensor | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> MaskedLMOutput | tuple[Tensor, ...]:
        """Args: ids (B, S); ``labels`` (B, S) token ids, -100 = not masked. Returns logits (B, S, V),
        or (N, V) for the N labelled positions under ``sparse_prediction``.

        Raises:
            InputError: labels of the wrong shape or dtype.
        """
        out = self.run_bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs)
        hidden = out.last_hidden_state
        opts = self.options
        if labels is not None:
            labels = check_class_labels(labels, "labels", tuple(hidden.shape[:2]), "masked-lm")
            if opts.sparse_prediction:  # type: ignore[union-attr]
                keep = labels.view(-1) != opts.sparse_pred_ignore_index  # type: ignore[union-attr]
                hidden, labels = hidden.reshape(-1, hidden.shape[-1])[keep], labels.view(-1)[keep]
        logits = self.decoder(self.head(hidden))
        loss = None
        if labels is not None:
            loss = token_cross_entropy(logits.float(), labels, self.spec.vocab_size)  # fp32, as ForMaskedLMLoss
        return finish(
            MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions),
            return_dict,
        )


# -- sequence-level heads ----------------------------------------------------------------------------------
class ModernBertForSequenceClassification(_ConfigOptions, BertForSequenceClassification):
    """transformers' ``ModernBertForSequenceClassification`` (``classifier_pooling`` cls / mean)."""

    uses_pooler: ClassVar[bool] = False
    options_model = SequenceClassificationOptionsMB

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.head = ModernBertPredictionHead(spec, self.options)

    def run_bert(self, **kwargs: Any) -> Any:
        out = super().run_bert(**kwargs)
        hidden = out.last_hidden_state
        mode = self.options.classifier_pooling  # type: ignore[union-attr]
        pooled = hidden[:, 0] if mode == "cls" else mean_pool(hidden, kwargs.get("attention_mask"))
        return dataclasses.replace(out, pooler_output=self.head(pooled))

    def classify_states(self, states: TaskStates) -> Tensor:
        """``(B, L)`` logits from packed or padded states."""
        mode = self.options.classifier_pooling  # type: ignore[union-attr]
        pooled = pooled_states(states, mode, "sequence-classification", self.spec.hidden_size)
        return self.classifier(self.dropout(self.head(pooled)))  # type: ignore[no-any-return]


class ModernBertForMultipleChoice(_ConfigOptions, BertForMultipleChoice):
    """transformers' ``ModernBertForMultipleChoice``: ``cls`` pooling takes each row's first real token."""

    uses_pooler: ClassVar[bool] = False
    options_model = MultipleChoiceOptions

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.head = ModernBertPredictionHead(spec, self.options)

    def run_bert(self, **kwargs: Any) -> Any:
        out = super().run_bert(**kwargs)
        hidden, mask = out.last_hidden_state, kwargs.get("attention_mask")  # (B·C, S, H), (B·C, S)
        if self.options.classifier_pooling == "cls":  # type: ignore[union-attr]
            first = mask.argmax(dim=-1) if mask is not None else torch.zeros((), dtype=torch.long)
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), first.to(hidden.device)]
        else:
            pooled = mean_pool(hidden, mask)
        return dataclasses.replace(out, pooler_output=self.head(pooled))


# -- token-level heads ---------------------------------------------------------------------------------------
class ModernBertForTokenClassification(_ConfigOptions, BertForTokenClassification):
    """transformers' ``ModernBertForTokenClassification``: head → dropout → classifier per token."""

    options_model = TokenClassificationOptionsMB

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.head = ModernBertPredictionHead(spec, self.options)

    def run_bert(self, **kwargs: Any) -> Any:
        out = super().run_bert(**kwargs)
        return dataclasses.replace(out, last_hidden_state=self.head(out.last_hidden_state))

    def token_logits(self, states: TaskStates) -> Tensor:
        hidden = check_states(states, "token-classification", self.spec.hidden_size)
        return self.classifier(self.dropout(self.head(hidden)))  # type: ignore[no-any-return]


class ModernBertForQuestionAnswering(_ConfigOptions, BertForQuestionAnswering):
    """transformers' ``ModernBertForQuestionAnswering``: head → dropout → ``classifier`` (start, end)."""

    classifier_keys: ClassVar[tuple[str, ...]] = ("classifier.weight", "classifier.bias")
    options_model = QuestionAnsweringOptionsMB

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.classifier = self._modules.pop("qa_outputs")  # transformers' key for the span projection
        self.head = ModernBertPredictionHead(spec, self.options)
        self.drop = nn.Dropout(spec.classifier_dropout or 0.0)

    @property
    def qa_outputs(self) -> Any:  # what BertForQuestionAnswering's forward and span_logits call
        return lambda hidden: self.classifier(self.drop(self.head(hidden)))


__all__ = [
    "ModernBertForMaskedLM", "ModernBertForMultipleChoice", "ModernBertForQuestionAnswering",
    "ModernBertForSequenceClassification", "ModernBertForTokenClassification", "ModernBertPredictionHead",
]
