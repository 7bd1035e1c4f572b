"""MPNet's embedding and layer (transformers' ``models/mpnet/modeling_mpnet.py``).

- :class:`MPNetEmbeddings`: word + absolute position → LayerNorm → dropout; no token types. The
  padding index is **1 whatever ``pad_token_id`` says** (transformers hard-codes it) and positions
  are RoBERTa's padding-aware ones (:func:`bertzoo.plugins.roberta.positions_from_ids`). It also
  owns the relative position bias table (file key ``encoder.relative_attention_bias.weight``, kept
  here as ``embeddings.relative_attention_bias``) and makes the bias once per forward through the
  trunk's ``position_state`` hook: ``(1, h, L, L)`` from the padding-unaware ``arange(L)``, T5-style
  buckets (always 32 of them, as transformers calls it, whatever the table size), shared by every
  layer through :attr:`bertzoo.interfaces.AttentionMask.bias`. A packed sequence of length ``n``
  uses the top-left ``n × n`` block, which is what the padded model computes for it.
- :class:`MPNetLayer`: BERT's post-LN block with MPNet's names (``attention.attn.{q,k,v,o}``,
  ``attention.LayerNorm``, ``intermediate.dense``, ``output.{dense,LayerNorm}``). Any attention that
  honours ``mask.bias`` runs it (eager, sdpa, flash: transformers itself has eager only).

Numerics: transformers divides the scores by ``sqrt(d)``; the ops multiply by ``d ** -0.5``
(bitwise equal for d = 64, within 2.4e-7 otherwise).

Shape legend: B batch, S sequence, H hidden, h heads, L the longest sequence.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from bertzoo.errors import IncompatibleComponentError, InputError
from bertzoo.interfaces import Attention, AttentionMask, LayerOutput, Positions
from bertzoo.model.cache import LayerCache
from bertzoo.plugins.eager import BertIntermediate, BertOutput, RenamedSelfAttention
from bertzoo.plugins.register_mpnet import MPNetEmbeddingOptions
from bertzoo.plugins.roberta import positions_from_ids

PADDING_IDX = 1  # transformers' MPNetEmbeddings: self.padding_idx = 1, config.pad_token_id is not read
BUCKETS = 32  # MPNetEncoder.compute_position_bias(num_buckets=32): the config value is not passed
MAX_DISTANCE = 128


def relative_position_bucket(relative_position: Tensor, num_buckets: int = BUCKETS,
                             max_distance: int = MAX_DISTANCE) -> Tensor:
    """transformers' ``MPNetEncoder.relative_position_bucket`` (T5 bidirectional): key-after-query
    distances in the upper half, exact below ``num_buckets // 4``, log-spaced (float32, truncated) up to
    ``max_distance``. ``relative_position`` = key − query → bucket ids, same shape."""
    n = -relative_position
    half = num_buckets // 2
    ret = (n < 0).to(torch.long) * half
    n = n.abs()
    max_exact = half // 2
    large = max_exact + (
        torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) * (half - max_exact)
    ).to(torch.long)
    large = torch.minimum(large, torch.full_like(large, half - 1))
    return ret + torch.where(n < max_exact, n, large)


class MPNetEmbeddings(nn.Module):
    """word + position (padding index 1) → LayerNorm → dropout, plus the relative bias table.

    Keys ``embeddings.{word,position}_embeddings``, ``embeddings.LayerNorm``,
    ``embeddings.relative_attention_bias`` (file: ``encoder.relative_attention_bias``).
    """

    position_offset = PADDING_IDX + 1  # the first real position (packed calls, see BertModel.forward_packed)

    def __init__(self, spec: Any, relative_attention_num_buckets: int = BUCKETS) -> None:
        super().__init__()
        MPNetEmbeddingOptions(relative_attention_num_buckets=relative_attention_num_buckets)  # >= 32, see there
        self.word_embeddings = nn.Embedding(spec.vocab_size, spec.hidden_size, padding_idx=PADDING_IDX)
        self.position_embeddings = nn.Embedding(spec.max_position_embeddings, spec.hidden_size,
                                                padding_idx=PADDING_IDX)
        self.LayerNorm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        self.dropout = nn.Dropout(spec.hidden_dropout_prob)
        self.relative_attention_bias = nn.Embedding(relative_attention_num_buckets, spec.num_attention_heads)

    def forward(
        self,
        input_ids: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        past_key_values_length: int = 0,
    ) -> Tensor:
        """``(B, S)`` ids or ``(B, S, H)`` embeds → ``(B, S, H)``; ``token_type_ids`` is ignored.

        Positions: as given; from ids ``cumsum(ids != 1)`` + 1 (pads get 1); from embeds
        ``arange(2, S + 2)``.

        Raises:
            InputError: no input, or an input longer than the position table allows.
        """
        del token_type_ids  # MPNet has no segment embedding
        if inputs_embeds is None:
            if input_ids is None:
                raise InputError("MPNetEmbeddings needs input_ids (B, S) or inputs_embeds (B, S, H)")
            inputs_embeds = self.word_embeddings(input_ids)  # (B, S, H)
        if position_ids is None:
            if input_ids is not None:
                position_ids = positions_from_ids(input_ids, PADDING_IDX, past_key_values_length)
            else:
                S = inputs_embeds.shape[1]
                position_ids = torch.arange(self.position_offset, S + self.position_offset,
                                            device=inputs_embeds.device)[None]  # (1, S)
            table = self.position_embeddings.num_embeddings
            if position_ids.shape[-1] + self.position_offset > table and int(position_ids.max()) >= table:
                limit = table - self.position_offset
                raise InputError(
                    f"input of {position_ids.shape[-1]} tokens is too long for this MPNet model: positions start at "
                    f"{self.position_offset}, so at most {limit} tokens fit max_position_embeddings={table}; "
                    f"truncate to {limit} tokens"
                )
        x = inputs_embeds + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(x))  # type: ignore[no-any-return]

    def position_state(self, position_ids: Tensor, *, max_len: int, dtype: torch.dtype) -> Positions:
        """The relative position bias of this forward, ``(1, h, L, L)`` (the trunk calls it once)."""
        device = self.relative_attention_bias.weight.device
        pos = torch.arange(max_len, dtype=torch.long, device=device)
        buckets = relative_position_bucket(pos[None, :] - pos[:, None])  # (L, L): key - query
        bias = self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)  # (1, h, L, L)
        return Positions(position_ids, max_len, bias=bias.to(dtype))


class MPNetSelfAttention(RenamedSelfAttention):
    """``q/k/v`` → attention op → ``o``; keys ``attention.attn.{q,k,v,o}``."""

    NAMES = ("q", "k", "v", "o")


class MPNetAttention(nn.Module):
    """``attn`` then ``LayerNorm(dropout(·) + x)``. Keys ``attention.attn.*``, ``attention.LayerNorm``."""

    def __init__(self, spec: Any, attention: Attention) -> None:
        super().__init__()
        self.attn = MPNetSelfAttention(spec, attention)
        self.LayerNorm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        self.dropout = nn.Dropout(spec.hidden_dropout_prob)

    def forward(self, hidden_states: Tensor, mask: AttentionMask, **kwargs: Any) -> tuple[Tensor, Tensor | None]:
        context, weights = self.attn(hidden_states, mask, **kwargs)
        return self.LayerNorm(self.dropout(context) + hidden_states), weights


class MPNetLayer(nn.Module):
    """MPNet's post-LN block: attention (the bias comes with the mask) → intermediate → output.

    Runs padded ``(B, S, H)`` and packed ``(T, H)`` states (registered with ``supports_packed=True``).

    Raises:
        IncompatibleComponentError: a cross-attention op was given (MPNet is an encoder).
    """

    def __init__(self, spec: Any, attention: Attention, cross_attention: Attention | None = None) -> None:
        super().__init__()
        if cross_attention is not None:
            raise IncompatibleComponentError(
                "the mpnet layer has no cross-attention (transformers' MPNet is an encoder); build with "
                "add_cross_attention=False, or use layer='bert'"
            )
        self.attention = MPNetAttention(spec, attention)
        self.intermediate = BertIntermediate(spec)
        self.output = BertOutput(spec, in_features=spec.intermediate_size)

    def forward(
        self,
        hidden_states: Tensor,
        *,
        mask: AttentionMask,
        head_mask: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_mask: AttentionMask | None = None,
        past_key_value: LayerCache | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        attention: Attention | None = None,
        positions: Positions | None = None,
    ) -> LayerOutput:
        """``(B, S, H)`` → :class:`LayerOutput` ``(B, S, H)``; packed ``(T, H)`` → ``(T, H)``.

        ``positions`` is accepted for the contract; the bias it carries is already on ``mask``.

        Raises:
            InputError: encoder states were given (no cross-attention).
        """
        del positions, encoder_mask
        if encoder_hidden_states is not None:
            raise InputError("encoder_hidden_states were given, but an mpnet layer has no cross-attention")
        x, weights = self.attention(
            hidden_states, mask, cache=past_key_value, head_mask=head_mask, need_weights=output_attentions,
            op=attention,
        )
        x = self.output(self.intermediate(x), x)
        return LayerOutput(x, weights, None, past_key_value if use_cache else None)
