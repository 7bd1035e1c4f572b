"""ModernBERT's embedding and layer (transformers' ``models/modernbert/modeling_modernbert.py``).

- :class:`ModernBertEmbeddings`: ``tok_embeddings`` → ``norm`` (LayerNorm, bias per ``norm_bias``)
  → dropout; no position or token-type table. Positions are rotary: the trunk's ``position_state``
  hook hands every layer each token's position (padded ``arange(S)`` as transformers, not
  padding-aware; packed ``0 .. n - 1`` per sequence).
- :class:`ModernBertLayer`: pre-LayerNorm: ``x + attn(attn_norm(x))`` then ``x + mlp(mlp_norm(x))``;
  layer 0's ``attn_norm`` is the identity (the embedding norm plays its part: no key). Attention:
  fused ``attn.Wqkv`` (rows q | k | v, head-major) → RoPE (half split, per-layer base) → the
  attention op → ``attn.Wo``. Global layers (every ``global_attn_every_n_layers``-th from 0, or
  ``layer_types``) see every key; local ones keys with ``|i - j| <= local_attention // 2``
  (:func:`bertzoo.model.masks.windowed`, any op that honours ``mask.window``). MLP: GeGLU,
  ``Wi`` (H → 2I: first half activated, second half the gate) → ``Wo``. The layer class also says
  which norm follows the last layer (:meth:`ModernBertLayer.final_norm`, key ``final_norm``).

Per-layer options come from ``layer_index`` (the factory passes it), so one registered layer serves
every depth. Rotary cos/sin are made once per forward and base, kept in the
:class:`~bertzoo.interfaces.Positions` cache, in fp32 and rounded to the working dtype as
transformers does; q and k rotate in fp32. Eager softmax: transformers' ModernBERT asks for fp32
(``softmax(..., dtype=float32).to(bf16)``); torch's softmax of a bf16 tensor already accumulates
in fp32 and rounds once, so the shared eager op gives the same bits (tests/families/test_modernbert.py
checks bf16 probabilities and states against transformers).

Padding: a padded query whose local window holds only padding sees no key. It gives zeros, as
transformers' default sdpa path does (bitwise); transformers' eager path gives there the mean of
every value row instead (``finfo.min`` masks absorb the scores). Real tokens never see padding.

Shape legend: B batch, S sequence, T packed tokens, H hidden, h heads, d head size, I intermediate.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from bertzoo.errors import IncompatibleComponentError, InputError
from bertzoo.interfaces import Attention, AttentionMask, LayerOutput, Positions
from bertzoo.model.cache import LayerCache
from bertzoo.model.masks import windowed
from bertzoo.plugins.activations import get_activation
from bertzoo.plugins.cpu_perf import linear
from bertzoo.plugins.register_modernbert import LayerType, ModernBertEmbeddingOptions, ModernBertLayerOptions


def layer_type(index: int, options: ModernBertLayerOptions | dict[str, Any]) -> LayerType:
    """``"full_attention"`` or ``"sliding_attention"`` for layer ``index`` (transformers' ``layer_types`` rule)."""
    opts = options if isinstance(options, ModernBertLayerOptions) else ModernBertLayerOptions(**options)
    if opts.layer_types is not None:
        if index >= len(opts.layer_types):
            raise InputError(f"layer_types has {len(opts.layer_types)} entries but layer {index} was built; give one "
                             "per layer (num_hidden_layers)")
        return opts.layer_types[index]
    return "sliding_attention" if index % opts.global_attn_every_n_layers else "full_attention"


def norm(spec: Any, bias: bool) -> nn.LayerNorm:
    """ModernBERT's LayerNorm: eps ``norm_eps`` (the spec's ``layer_norm_eps``), bias only if asked."""
    return nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps, bias=bias)


# -- rotary positions ------------------------------------------------------------------------------------
def rotate_half(x: Tensor) -> Tensor:
    """``cat(-x2, x1)`` over the last dim (the half-split / NeoX convention)."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotary_tables(positions: Positions, theta: float, head_dim: int, dtype: torch.dtype, device: torch.device
                  ) -> tuple[Tensor, Tensor]:
    """cos, sin for every token, ``(B|1, 1, S, d)`` padded or ``(T, 1, d)`` packed, once per forward and base.

    transformers' ``ModernBertRotaryEmbedding``: ``inv_freq = 1 / theta^(arange(0, d, 2) / d)`` in
    fp32, ``freqs = pos · inv_freq``, ``emb = cat(freqs, freqs)``, cos/sin cast to the working dtype.
    """
    key = ("bertzoo:rope", float(theta), head_dim, dtype, str(device))
    tables = positions.cache.get(key)
    if tables is None:
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float, device=device) / head_dim))
        freqs = positions.position_ids.to(device)[..., None].float() * inv_freq  # (..., d/2)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(dtype), emb.sin().to(dtype)
        # head axis: (B|1, S, d) -> (B|1, 1, S, d); packed (T, d) -> (T, 1, d)
        tables = (cos.unsqueeze(1), sin.unsqueeze(1)) if not positions.packed else (cos[:, None], sin[:, None])
        positions.cache[key] = tables
    return tables


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """``x·cos + rotate_half(x)·sin`` in fp32, back to ``x``'s dtype."""
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


# -- embedding -------------------------------------------------------------------------------------------
class ModernBertEmbeddings(nn.Module):
    """``tok_embeddings`` → ``norm`` → dropout. Keys ``embeddings.tok_embeddings``, ``embeddings.norm``.

    ``word_embeddings`` names ``tok_embeddings`` (the trunk and the MLM decoder tie read it).
    ``max_positions`` is None: no position table, so the trunk takes inputs longer than
    ``max_position_embeddings`` as transformers does (rotary tables are computed from the positions;
    the tokenizer's ``model_max_length`` truncates).
    """

    max_positions: int | None = None

    def __init__(self, spec: Any, norm_bias: bool = False, embedding_dropout: float = 0.0) -> None:
        super().__init__()
        self.tok_embeddings = nn.Embedding(spec.vocab_size, spec.hidden_size, padding_idx=spec.pad_token_id)
        self.norm = norm(spec, norm_bias)
        self.drop = nn.Dropout(embedding_dropout)

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.tok_embeddings

    def forward(
        self,
        input_ids: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        past_key_values_length: int = 0,
    ) -> Tensor:
        """``(B, S)`` ids or ``(B, S, H)`` embeds → ``(B, S, H)``; token types and positions are not
        embedded here (positions are rotary, see :meth:`position_state`).

        Raises:
            InputError: no input.
        """
        del token_type_ids, position_ids, past_key_values_length
        if inputs_embeds is None:
            if input_ids is None:
                raise InputError("ModernBertEmbeddings needs input_ids (B, S) or inputs_embeds (B, S, H)")
            inputs_embeds = self.tok_embeddings(input_ids)
        return self.drop(self.norm(inputs_embeds))  # type: ignore[no-any-return]

    def position_state(self, position_ids: Tensor, *, max_len: int, dtype: torch.dtype) -> Positions:
        """Each token's position for the layers' rotary tables (no bias)."""
        del dtype
        return Positions(position_ids, max_len)


# -- layer -----------------------------------------------------------------------------------------------
class ModernBertAttention(nn.Module):
    """``Wqkv`` → RoPE → op → ``Wo`` (→ dropout). Keys ``attn.Wqkv``, ``attn.Wo``."""

    def __init__(self, spec: Any, attention: Attention, *, theta: float, window: int | None, bias: bool) -> None:
        super().__init__()
        self.num_heads = spec.num_attention_heads
        self.head_dim = spec.hidden_size // spec.num_attention_heads
        self.theta = theta
        self.window = window
        self.dropout_p = spec.attention_probs_dropout_prob
        self.Wqkv = nn.Linear(spec.hidden_size, 3 * spec.hidden_size, bias=bias)
        self.Wo = nn.Linear(spec.hidden_size, spec.hidden_size, bias=bias)
        self.out_drop = nn.Dropout(self.dropout_p) if self.dropout_p > 0.0 else nn.Identity()
        self.op = attention

    def extra_repr(self) -> str:
        return f"theta={self.theta:g}, window={self.window}"

    def forward(self, x: Tensor, mask: AttentionMask, positions: Positions, *, head_mask: Tensor | None,
                need_weights: bool, op: Attention | None) -> tuple[Tensor, Tensor | None]:
        """``(B, S, H)`` or packed ``(T, H)`` → the same shape, and weights or None."""
        shape = x.shape[:-1]
        q, k, v = linear(x, self.Wqkv).view(*shape, 3, self.num_heads, self.head_dim).unbind(dim=-3)  # (..., h, d)
        if x.dim() == 3:
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, h, S, d)
        cos, sin = rotary_tables(positions, self.theta, self.head_dim, x.dtype, x.device)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        context, weights = (op or self.op)(
            q, k, v, mask=windowed(mask, self.window), dropout_p=self.dropout_p if self.training else 0.0,
            scale=self.head_dim**-0.5, need_weights=need_weights, head_mask=head_mask,
        )
        if x.dim() == 3:
            context = context.transpose(1, 2)  # (B, S, h, d)
        return self.out_drop(linear(context.reshape(*shape, -1), self.Wo)), weights


class ModernBertMLP(nn.Module):
    """GeGLU: ``Wi`` (H → 2I) split into input | gate → ``Wo(drop(act(input) · gate))``. Keys ``mlp.Wi``, ``mlp.Wo``."""

    def __init__(self, spec: Any, *, bias: bool, dropout: float) -> None:
        super().__init__()
        self.Wi = nn.Linear(spec.hidden_size, 2 * spec.intermediate_size, bias=bias)
        self.act = get_activation(spec.hidden_act)
        self.drop = nn.Dropout(dropout)
        self.Wo = nn.Linear(spec.intermediate_size, spec.hidden_size, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        inputs, gate = linear(x, self.Wi).chunk(2, dim=-1)
        return linear(self.drop(self.act(inputs) * gate), self.Wo)


class ModernBertLayer(nn.Module):
    """Pre-LayerNorm block: ``x + attn(attn_norm(x))``, then ``x + mlp(mlp_norm(x))``.

    Runs padded ``(B, S, H)`` and packed ``(T, H)`` states (registered with ``supports_packed=True``).
    Needs ``positions=`` (the trunk passes them: the ``modernbert`` embedding defines
    ``position_state``).

    Args:
        spec: the model spec (``hidden_act`` = config's ``hidden_activation``, ``layer_norm_eps`` =
            ``norm_eps``, ``attention_probs_dropout_prob`` = ``attention_dropout``).
        attention: the attention op (it must honour ``mask.window`` for local layers).
        layer_index: this layer's depth (global or local, its rotary base, layer 0's identity norm).
        **options: :class:`ModernBertLayerOptions`.

    Raises:
        IncompatibleComponentError: a cross-attention op was given (ModernBERT is an encoder).
    """

    def __init__(self, spec: Any, attention: Attention, cross_attention: Attention | None = None, *,
                 layer_index: int = 0, **options: Any) -> None:
        super().__init__()
        if cross_attention is not None:
            raise IncompatibleComponentError(
                "the modernbert layer has no cross-attention (transformers' ModernBERT is an encoder); build "
                "with add_cross_attention=False"
            )
        opts = ModernBertLayerOptions(**options)
        self.layer_index = layer_index
        self.attention_type = layer_type(layer_index, opts)
        local = self.attention_type == "sliding_attention"
        self.attn_norm: nn.Module = nn.Identity() if layer_index == 0 else norm(spec, opts.norm_bias)
        self.attn = ModernBertAttention(
            spec, attention, theta=opts.local_rope_theta if local else opts.global_rope_theta,
            window=opts.local_attention // 2 if local else None, bias=opts.attention_bias,
        )
        self.mlp_norm = norm(spec, opts.norm_bias)
        self.mlp = ModernBertMLP(spec, bias=opts.mlp_bias, dropout=opts.mlp_dropout)

    @classmethod
    def final_norm(cls, spec: Any, **options: Any) -> nn.Module:
        """The norm after the last layer (the trunk's ``final_norm``)."""
        return norm(spec, ModernBertLayerOptions(**options).norm_bias)

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

        Raises:
            InputError: encoder states or a cache were given, or no ``positions`` (build with the
                ``modernbert`` embedding, or another that defines ``position_state``).
        """
        del encoder_mask
        if encoder_hidden_states is not None or past_key_value is not None:
            raise InputError("a modernbert layer is an encoder layer: no encoder_hidden_states, no KV cache")
        if positions is None:
            raise InputError(
                "the modernbert layer needs positions= (rotary); the trunk passes them when the embedding defines "
                "position_state: build with embedding='modernbert'"
            )
        x = hidden_states
        attended, weights = self.attn(self.attn_norm(x), mask, positions, head_mask=head_mask,
                                      need_weights=output_attentions, op=attention)
        x = x + attended
        x = x + self.mlp(self.mlp_norm(x))
        return LayerOutput(x, weights, None, None)


__all__ = [
    "ModernBertEmbeddingOptions", "ModernBertEmbeddings", "ModernBertLayer", "ModernBertLayerOptions",
    "apply_rotary", "layer_type", "rotary_tables", "rotate_half",
]
