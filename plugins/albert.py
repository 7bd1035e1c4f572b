"""ALBERT's embedding, layer and pooler (transformers' ``models/albert/modeling_albert.py``).

- :class:`AlbertEmbeddings`: BERT's embeddings at width E (``embedding_size``), then
  ``embedding_hidden_mapping_in: Linear(E, H)``, so the trunk sees H-wide states (transformers'
  ``hidden_states[0]`` is the mapped tensor too). The file keeps the mapping at
  ``encoder.embedding_hidden_mapping_in``; the ALBERT family renames it (plugins/register_albert.py).
- :class:`AlbertLayer`: ``attention.{query,key,value}`` → op → ``attention.dense`` → dropout →
  ``attention.LayerNorm(x + ·)`` (the output projection and its LayerNorm live inside the
  attention module), then ``ffn`` → ``hidden_act`` → ``ffn_output`` (no dropout) →
  ``full_layer_layer_norm(· + ·)``. Layer sharing (groups, inner layers) is the trunk's business:
  the spec's ``layer_schedule``.
- :class:`AlbertPooler`: a bare ``Linear(H, H)`` + tanh on the first token; keys ``pooler.{weight,bias}``.

The projections and the op are BERT's (:class:`bertzoo.plugins.eager.BertSelfAttention`, same
``query/key/value`` names), so eager, sdpa, flash and packed ``(T, H)`` execution work unchanged.

Shape legend: B batch, S sequence, E embedding width, H hidden, I intermediate.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from bertzoo.errors import IncompatibleComponentError, InputError
from bertzoo.heads.pooling import pool
from bertzoo.interfaces import Attention, AttentionMask, LayerOutput
from bertzoo.model.cache import LayerCache
from bertzoo.plugins.activations import get_activation
from bertzoo.plugins.cpu_perf import linear
from bertzoo.plugins.eager import BertEmbeddings, BertSelfAttention


class _Width:
    """The spec seen at another hidden width (BERT's embeddings built E-wide)."""

    def __init__(self, spec: Any, hidden_size: int) -> None:
        self._spec, self.hidden_size = spec, hidden_size

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spec, name)


def embedding_width(spec: Any) -> int:
    """E: ``embedding_size``, or ``hidden_size`` when it is None."""
    return int(spec.embedding_size or spec.hidden_size)


class AlbertEmbeddings(BertEmbeddings):
    """BERT's embeddings at width E, then ``embedding_hidden_mapping_in`` (E → H): ``(B, S, H)``."""

    def __init__(self, spec: Any) -> None:
        super().__init__(_Width(spec, embedding_width(spec)))
        self.embedding_hidden_mapping_in = nn.Linear(embedding_width(spec), spec.hidden_size)

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """As :meth:`BertEmbeddings.forward`; ``inputs_embeds`` are E-wide, the result H-wide."""
        return linear(super().forward(*args, **kwargs), self.embedding_hidden_mapping_in)


class AlbertAttention(BertSelfAttention):
    """``query/key/value`` → op → ``dense`` → dropout → ``LayerNorm(x + ·)`` (HF ``AlbertAttention``)."""

    def __init__(self, spec: Any, attention: Attention) -> None:
        super().__init__(spec, attention)
        self.dense = nn.Linear(spec.hidden_size, spec.hidden_size)
        self.LayerNorm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        self.output_dropout = nn.Dropout(spec.hidden_dropout_prob)

    def forward(self, hidden_states: Tensor, mask: AttentionMask, **kwargs: Any) -> tuple[Tensor, Tensor | None]:
        """``(B, S, H)`` or packed ``(T, H)`` → the normalised attention output and weights or None."""
        context, weights = super().forward(hidden_states, mask, **kwargs)
        out = self.output_dropout(linear(context, self.dense))
        return self.LayerNorm(hidden_states + out), weights


class AlbertLayer(nn.Module):
    """HF ``AlbertLayer``: attention (with its own dense + LayerNorm), then the FFN without dropout.

    Runs padded ``(B, S, H)`` and packed ``(T, H)`` hidden states (registered with
    ``supports_packed=True``). ALBERT has no cross-attention.

    Raises:
        IncompatibleComponentError: a cross-attention op was given (``add_cross_attention``).
    """

    def __init__(self, spec: Any, attention: Attention, cross_attention: Attention | None = None) -> None:
        super().__init__()
        if cross_attention is not None:
            raise IncompatibleComponentError(
                "the albert layer has no cross-attention (transformers' ALBERT is an encoder); build with "
                "add_cross_attention=False, or use layer='bert'"
            )
        self.full_layer_layer_norm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        self.attention = AlbertAttention(spec, attention)
        self.ffn = nn.Linear(spec.hidden_size, spec.intermediate_size)
        self.ffn_output = nn.Linear(spec.intermediate_size, spec.hidden_size)
        self.activation = get_activation(spec.hidden_act)

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
            raise InputError("encoder_hidden_states were given, but an albert layer has no cross-attention")
        x, weights = self.attention(
            hidden_states, mask, cache=past_key_value, head_mask=head_mask, need_weights=output_attentions,
            op=attention,
        )
        ffn = linear(self.activation(linear(x, self.ffn)), self.ffn_output)
        x = self.full_layer_layer_norm(ffn + x)
        return LayerOutput(x, weights, None, past_key_value if use_cache else None)


class AlbertPooler(nn.Linear):
    """tanh(Linear(first token)): ALBERT's pooler is the bare Linear (keys ``pooler.weight/bias``).

    Padded input: position 0 whatever the mask says, as transformers does. Packed: each
    sequence's first token.
    """

    def __init__(self, spec: Any) -> None:
        super().__init__(spec.hidden_size, spec.hidden_size)

    def forward(  # type: ignore[override]
        self, hidden_states: Tensor, attention_mask: Tensor | None = None, *, cu_seqlens: Tensor | None = None
    ) -> Tensor:
        first = pool(hidden_states, "cls", cu_seqlens=cu_seqlens)  # (B, H); the mask is ignored on purpose
        return super().forward(first).tanh()
