"""DistilBERT's embedding and layer (transformers' ``models/distilbert/modeling_distilbert.py``).

- :class:`DistilBertEmbeddings`: word + absolute position → LayerNorm → dropout. No token types
  (``token_type_ids`` is accepted and ignored, as transformers' tokenizer returns them).
- :class:`DistilBertLayer` (HF ``TransformerBlock``): post-LN like BERT, other names and one
  dropout less: ``attention.{q_lin,k_lin,v_lin}`` → op → ``attention.out_lin`` (no dropout) →
  ``sa_layer_norm(· + x)``; ``ffn.lin1`` → activation → ``ffn.lin2`` → dropout →
  ``output_layer_norm(· + ·)``.

The projections and the attention op are BERT's (:class:`bertzoo.plugins.eager.BertSelfAttention`),
so eager, sdpa, flash and packed ``(T, H)`` execution work unchanged. Every LayerNorm uses eps
1e-12: transformers hard-codes it (DistilBertConfig has no ``layer_norm_eps``).

Shape legend: B batch, S sequence, H hidden (``dim``), I FFN width (``hidden_dim``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from bertzoo.errors import IncompatibleComponentError, InputError
from bertzoo.interfaces import Attention, AttentionMask, LayerOutput
from bertzoo.model.cache import LayerCache
from bertzoo.plugins.activations import get_activation
from bertzoo.plugins.cpu_perf import linear
from bertzoo.plugins.eager import RenamedSelfAttention

EPS = 1e-12  # transformers' DistilBERT LayerNorms, all of them


class DistilBertEmbeddingOptions(BaseModel):
    """Options of the ``distilbert`` embedding (config.json's ``sinusoidal_pos_embds``)."""

    model_config = ConfigDict(extra="forbid")

    sinusoidal: bool = Field(
        False, description="initialise the position table with fixed sinusoids (only affects fresh weights)"
    )


def sinusoidal_table(n_pos: int, dim: int) -> Tensor:
    """transformers' ``_create_sinusoidal_embeddings``: angle ``p / 10000^(2⌊j/2⌋/dim)`` in float64,
    sin on even columns, cos on odd ones, cast to float32. ``(n_pos, dim)``."""
    j = np.arange(dim)
    angle = np.arange(n_pos)[:, None] / np.power(10000, 2 * (j // 2) / dim)[None, :]
    table = torch.empty(n_pos, dim)
    table[:, 0::2] = torch.FloatTensor(np.sin(angle[:, 0::2]))
    table[:, 1::2] = torch.FloatTensor(np.cos(angle[:, 1::2]))
    return table


class DistilBertEmbeddings(nn.Module):
    """word + position → LayerNorm(eps 1e-12) → dropout. Keys ``embeddings.{word,position}_embeddings``,
    ``embeddings.LayerNorm``."""

    def __init__(self, spec: Any, sinusoidal: bool = False) -> None:
        super().__init__()
        self.sinusoidal = sinusoidal
        self.word_embeddings = nn.Embedding(spec.vocab_size, spec.hidden_size, padding_idx=spec.pad_token_id)
        self.position_embeddings = nn.Embedding(spec.max_position_embeddings, spec.hidden_size)
        self.LayerNorm = nn.LayerNorm(spec.hidden_size, eps=EPS)
        self.dropout = nn.Dropout(spec.hidden_dropout_prob)
        positions = torch.arange(spec.max_position_embeddings).expand((1, -1))
        self.position_ids: Tensor
        self.register_buffer("position_ids", positions, persistent=False)  # (1, max_pos)

    def forward(
        self,
        input_ids: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        past_key_values_length: int = 0,
    ) -> Tensor:
        """``(B, S)`` ids or ``(B, S, H)`` embeds → ``(B, S, H)``; ``token_type_ids`` is ignored."""
        del token_type_ids  # DistilBERT has no segment embedding
        if inputs_embeds is None:
            if input_ids is None:
                raise InputError("DistilBertEmbeddings needs input_ids (B, S) or inputs_embeds (B, S, H)")
            inputs_embeds = self.word_embeddings(input_ids)  # (B, S, H)
        if position_ids is None:
            end = past_key_values_length + inputs_embeds.shape[1]
            position_ids = self.position_ids[:, past_key_values_length:end]  # (1, S)
        return self.dropout(self.LayerNorm(inputs_embeds + self.position_embeddings(position_ids)))

    def _init_bertzoo_weights(self, spec: Any) -> None:
        if self.sinusoidal:  # transformers' _init_weights with sinusoidal_pos_embds=True
            with torch.no_grad():
                weight = self.position_embeddings.weight
                weight.copy_(sinusoidal_table(*weight.shape).to(weight.dtype))


class DistilBertSelfAttention(RenamedSelfAttention):
    """``q_lin/k_lin/v_lin`` → attention op → ``out_lin``; keys ``attention.{q_lin,k_lin,v_lin,out_lin}``."""

    NAMES = ("q_lin", "k_lin", "v_lin", "out_lin")


class DistilBertFFN(nn.Module):
    """``lin1`` → activation → ``lin2`` → dropout (HF ``FFN``). Keys ``ffn.{lin1,lin2}``."""

    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.lin1 = nn.Linear(spec.hidden_size, spec.intermediate_size)
        self.lin2 = nn.Linear(spec.intermediate_size, spec.hidden_size)
        self.dropout = nn.Dropout(spec.hidden_dropout_prob)
        self.activation = get_activation(spec.hidden_act)

    def forward(self, x: Tensor) -> Tensor:
        if self.activation is torch.nn.functional.gelu:
            inner = linear(x, self.lin1, gelu=True)  # (.., I), GELU fused on CPU
        else:
            inner = self.activation(linear(x, self.lin1))
        return self.dropout(linear(inner, self.lin2))


class DistilBertLayer(nn.Module):
    """HF ``TransformerBlock``: attention → ``sa_layer_norm`` → FFN → ``output_layer_norm``.

    Runs padded ``(B, S, H)`` and packed ``(T, H)`` hidden states (registered with
    ``supports_packed=True``). DistilBERT has no cross-attention.

    Raises:
        IncompatibleComponentError: a cross-attention op was given (``add_cross_attention``).
    """

    def __init__(self, spec: Any, attention: Attention, cross_attention: Attention | None = None) -> None:
        super().__init__()
        if cross_attention is not None:
            raise IncompatibleComponentError(
                "the distilbert layer has no cross-attention (transformers' DistilBERT is an encoder); "
                "build with add_cross_attention=False, or use layer='bert'"
            )
        self.attention = DistilBertSelfAttention(spec, attention)
        self.sa_layer_norm = nn.LayerNorm(spec.hidden_size, eps=EPS)
        self.ffn = DistilBertFFN(spec)
        self.output_layer_norm = nn.LayerNorm(spec.hidden_size, eps=EPS)

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
    ) -> LayerOutput:
        """``(B, S, H)`` → :class:`LayerOutput` ``(B, S, H)``; packed ``(T, H)`` → ``(T, H)``.

        Raises:
            InputError: encoder states were given (no cross-attention).
        """
        if encoder_hidden_states is not None:
            raise InputError("encoder_hidden_states were given, but a distilbert layer has no cross-attention")
        x, weights = self.attention(
            hidden_states, mask, cache=past_key_value, head_mask=head_mask, need_weights=output_attentions,
            op=attention,
        )
        x = self.sa_layer_norm(x + hidden_states)
        x = self.output_layer_norm(self.ffn(x) + x)
        return LayerOutput(x, weights, None, past_key_value if use_cache else None)
