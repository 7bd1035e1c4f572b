"""Language-model heads: ``masked-lm`` (BertForMaskedLM) and ``causal-lm`` (BertLMHeadModel).

Both own ``cls.predictions`` (HF's key path): a transform (dense → activation → LayerNorm) and
a ``decoder`` Linear(H, V). When ``tie_word_embeddings`` is on (the default), the decoder's
weight *is* the trunk's word-embedding matrix and its bias *is* ``cls.predictions.bias``, as in
transformers 5; otherwise both are independent parameters and ``cls.predictions.bias`` is
unused (it is still kept, because HF checkpoints carry it).

Shape legend: ``B`` batch, ``S`` sequence length, ``H`` hidden size, ``V`` vocabulary size.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertzoo.errors import InputError
from bertzoo.heads.base import (
    IGNORE_INDEX,
    BertHead,
    check_class_labels,
    check_positions,
    check_states,
    finish,
)
from bertzoo.heads.outputs import CausalLMOutput, MaskedLMOutput
from bertzoo.interfaces import TaskStates
from bertzoo.plugins.activations import get_activation

logger = logging.getLogger(__name__)


class BertPredictionHeadTransform(nn.Module):
    """dense → activation (``hidden_act``) → LayerNorm, (B, S, H) → (B, S, H)."""

    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.dense = nn.Linear(spec.hidden_size, spec.hidden_size)
        self.transform_act_fn = get_activation(spec.hidden_act)
        self.LayerNorm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class BertLMPredictionHead(nn.Module):
    """transform → decoder, (B, S, H) → (B, S, V). Keys ``transform.*``, ``decoder.*``, ``bias``."""

    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(spec)
        self.decoder = nn.Linear(spec.hidden_size, spec.vocab_size, bias=True)
        # the output-only bias of each token; the decoder's own bias when tied
        self.bias = nn.Parameter(torch.zeros(spec.vocab_size))

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.decoder(self.transform(hidden_states))

    def _init_bertzoo_weights(self, spec: Any) -> None:
        # HF zeroes the MLM bias (the decoder's own bias is zeroed by the Linear rule)
        with torch.no_grad():
            self.bias.zero_()


class BertOnlyMLMHead(nn.Module):
    """The ``cls`` module of the MLM and causal-LM heads: ``cls.predictions``."""

    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(spec)

    def forward(self, sequence_output: Tensor) -> Tensor:
        return self.predictions(sequence_output)


def tie_mlm_decoder(head: Any, predictions: BertLMPredictionHead, spec: Any) -> None:
    """Share the decoder weight with the word embeddings and its bias with ``predictions.bias``
    when ``spec.tie_word_embeddings``; otherwise leave them independent."""
    if not spec.tie_word_embeddings:
        return
    predictions.decoder.weight = head.bert.embeddings.word_embeddings.weight
    predictions.decoder.bias = predictions.bias


def mask_position_logits(predictions: BertLMPredictionHead, states: TaskStates, positions: Tensor, head: str,
                         hidden_size: int) -> Tensor:
    """The fill-mask contract of the heads owning ``cls.predictions``: the vocabulary projection only
    at the True ``positions`` → ``(M, V)``, one row per mask in row-major order.

    Raises:
        InputError: states or positions that do not fit.
    """
    hidden = check_states(states, head, hidden_size)
    positions = check_positions(positions, states, head)
    return predictions(hidden[positions])  # type: ignore[no-any-return]


def token_cross_entropy(logits: Tensor, labels: Tensor, vocab_size: int) -> Tensor:
    """Mean cross-entropy over all tokens, ``-100`` ignored (no shifting)."""
    return F.cross_entropy(logits.view(-1, vocab_size), labels.view(-1), ignore_index=IGNORE_INDEX)


class BertForMaskedLM(BertHead):
    """Masked language model (HF ``BertForMaskedLM``); the trunk has no pooler."""

    uses_pooler: ClassVar[bool] = False
    per_token_outputs: ClassVar[bool] = True

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        if spec.is_decoder:
            logger.warning("masked-lm expects is_decoder=False (bidirectional attention); this spec is a decoder")
        self.cls = BertOnlyMLMHead(spec)
        tie_mlm_decoder(self, self.cls.predictions, spec)

    def tie_weights(self) -> None:
        tie_mlm_decoder(self, self.cls.predictions, self.spec)

    # -- task "fill-mask" (bertzoo.interfaces.FillMaskTask) ----------------------------------------
    def mask_logits(self, states: TaskStates, positions: Tensor) -> Tensor:
        """``(M, V)`` vocabulary logits at the True ``positions`` (shaped like ``states.input_ids``)."""
        return mask_position_logits(self.cls.predictions, states, positions, "masked-lm", self.spec.hidden_size)

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, encoder_hidden_states: Tensor | None = None,
                encoder_attention_mask: Tensor | None = None, labels: Tensor | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> MaskedLMOutput | tuple[Tensor, ...]:
        """Args: ids (B, S) or embeds (B, S, H); ``labels`` (B, S) token ids, -100 = not masked.

        Raises:
            InputError: labels of the wrong shape or dtype.
        """
        out = self.run_bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds,
            encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask, **kwargs,
        )
        logits = self.cls(out.last_hidden_state)  # (B, S, V)
        loss = None
        if labels is not None:
            labels = check_class_labels(labels, "labels", tuple(logits.shape[:2]), "masked-lm")
            loss = token_cross_entropy(logits, labels, self.spec.vocab_size)
        return finish(
            MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions),
            return_dict,
        )


def slice_logits_to_keep(hidden_states: Tensor, logits_to_keep: int | Tensor) -> Tensor:
    """HF's rule: int k → last k positions (0 = all); 1-D tensor → those positions; 2-D integer
    → per-row positions; 2-D bool → the True positions, flattened to (N, H)."""
    if isinstance(logits_to_keep, Tensor) and logits_to_keep.ndim == 2:
        if logits_to_keep.dtype == torch.bool:
            return hidden_states[logits_to_keep]
        return torch.take_along_dim(hidden_states, logits_to_keep[..., None], dim=1)
    index: slice | Tensor = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
    return hidden_states[:, index, :]


def causal_lm_loss(
    logits: Tensor, labels: Tensor, vocab_size: int, num_items_in_batch: Tensor | int | None = None
) -> Tensor:
    """HF's ``ForCausalLMLoss``: fp32 logits, labels shifted left by one (position t predicts
    label t+1, the last position predicts nothing), -100 ignored; mean, or sum / ``num_items_in_batch``."""
    logits = logits.float()
    shift_labels = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:].contiguous()
    reduction = "sum" if num_items_in_batch is not None else "mean"
    loss = F.cross_entropy(
        logits.view(-1, vocab_size), shift_labels.view(-1).to(logits.device),
        ignore_index=IGNORE_INDEX, reduction=reduction,
    )
    if num_items_in_batch is not None:
        if isinstance(num_items_in_batch, Tensor):
            num_items_in_batch = num_items_in_batch.to(loss.device)
        loss = loss / num_items_in_batch
    return loss


class BertLMHeadModel(BertHead):
    """Left-to-right language model (HF ``BertLMHeadModel``); the trunk has no pooler.

    Meant for ``is_decoder=True`` specs (causal attention, KV cache); on an encoder spec it runs
    bidirectionally, as HF does, with a warning.
    """

    uses_pooler: ClassVar[bool] = False
    per_token_outputs: ClassVar[bool] = True

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        if not spec.is_decoder:
            logger.warning("causal-lm on a spec with is_decoder=False attends both ways; set is_decoder=True")
        self.cls = BertOnlyMLMHead(spec)
        tie_mlm_decoder(self, self.cls.predictions, spec)

    def tie_weights(self) -> None:
        tie_mlm_decoder(self, self.cls.predictions, self.spec)

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, encoder_hidden_states: Tensor | None = None,
                encoder_attention_mask: Tensor | None = None, labels: Tensor | None = None,
                past_key_values: Any = None, use_cache: bool | None = None, logits_to_keep: int | Tensor = 0,
                num_items_in_batch: Tensor | int | None = None, return_dict: bool | None = None,
                **kwargs: Any) -> CausalLMOutput | tuple[Any, ...]:
        """Args: ids (B, S) or embeds (B, S, H); ``labels`` (B, S), unshifted (the loss shifts them);
        ``logits_to_keep`` as HF (0 = all positions). ``cache=`` is accepted as an alias of
        ``past_key_values`` by the trunk.

        Raises:
            InputError: labels of the wrong shape or dtype, or labels with ``logits_to_keep``.
        """
        if labels is not None:
            use_cache = False  # HF: training never builds a cache
        out = self.run_bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds,
            encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask,
            past_key_values=past_key_values, use_cache=use_cache, **kwargs,
        )
        hidden = out.last_hidden_state
        if not (isinstance(logits_to_keep, int) and logits_to_keep == 0):
            hidden = slice_logits_to_keep(hidden, logits_to_keep)
        logits = self.cls(hidden)  # (B, S_kept, V)
        loss = None
        if labels is not None:
            if logits.dim() != 3 or logits.shape[:2] != out.last_hidden_state.shape[:2]:
                raise InputError(
                    "causal-lm: labels need logits at every position, but logits_to_keep="
                    f"{logits_to_keep!r} kept {tuple(logits.shape[:-1])}; drop logits_to_keep when passing labels"
                )
            labels = check_class_labels(labels, "labels", tuple(logits.shape[:2]), "causal-lm")
            loss = causal_lm_loss(logits, labels, self.spec.vocab_size, num_items_in_batch)
        return finish(
            CausalLMOutput(
                loss=loss, logits=logits, past_key_values=getattr(out, "past_key_values", None),
                hidden_states=out.hidden_states, attentions=out.attentions,
                cross_attentions=getattr(out, "cross_attentions", None),
            ),
            return_dict,
        )
