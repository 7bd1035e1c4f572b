"""The eager reference components: BERT embeddings, attention, layer and poolers.

Read top to bottom: embeddings → attention (the op) → self-attention projections → layer →
poolers. The math follows HF transformers' ``models/bert/modeling_bert.py`` exactly (activations:
:mod:`bertzoo.plugins.activations`; the linear layers run through
:func:`bertzoo.plugins.cpu_perf.linear`, ``layer(x)`` made faster on CPU), and module names equal
HF's checkpoint keys (``attention.self.query``, ``attention.output.LayerNorm``,
``intermediate.dense``, ...), so a HF state dict loads with no renaming. :class:`EagerAttention` is the readable oracle the fast
attention implementations are tested against.

Shape legend: B batch, S query length, S_k key length, H hidden, h heads, d head size (H / h),
I intermediate size.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertzoo.errors import InputError
from bertzoo.heads.pooling import pool
from bertzoo.interfaces import Attention, AttentionCapabilities, AttentionMask, LayerOutput
from bertzoo.model.cache import LayerCache
from bertzoo.model.masks import additive_mask, empty_rows
from bertzoo.plugins.activations import get_activation
from bertzoo.plugins.cpu_perf import linear
from bertzoo.plugins.register_eager import EAGER_CAPABILITIES

# -- embeddings --------------------------------------------------------------------------------------


class BertEmbeddings(nn.Module):
    """word + token type, then + absolute position → LayerNorm → dropout. Keys ``embeddings.*``."""

    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(spec.vocab_size, spec.hidden_size, padding_idx=spec.pad_token_id)
        self.position_embeddings = nn.Embedding(spec.max_position_embeddings, spec.hidden_size)
        self.token_type_embeddings = nn.Embedding(spec.type_vocab_size, spec.hidden_size)
        self.LayerNorm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        self.dropout = nn.Dropout(spec.hidden_dropout_prob)
        # Non-persistent, as in HF: not in state_dict, so checkpoints never depend on them.
        positions = torch.arange(spec.max_position_embeddings).expand((1, -1))
        self.register_buffer("position_ids", positions, persistent=False)  # (1, max_pos)
        self.register_buffer("token_type_ids", torch.zeros_like(positions), persistent=False)  # (1, max_pos)

    def forward(
        self,
        input_ids: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        past_key_values_length: int = 0,
    ) -> Tensor:
        """``(B, S)`` ids or ``(B, S, H)`` embeds → ``(B, S, H)``."""
        if inputs_embeds is None:
            if input_ids is None:
                raise InputError("BertEmbeddings needs input_ids (B, S) or inputs_embeds (B, S, H)")
            inputs_embeds = self.word_embeddings(input_ids)  # (B, S, H)
        B, S = inputs_embeds.shape[:2]
        end = past_key_values_length + S
        if position_ids is None:
            position_ids = self.position_ids[:, past_key_values_length:end]  # (1, S)
        if token_type_ids is None:
            fits = end <= self.token_type_ids.shape[1]
            token_type_ids = (
                self.token_type_ids[:, past_key_values_length:end].expand(B, S) if fits
                else torch.zeros((B, S), dtype=torch.long, device=inputs_embeds.device)
            )
        x = inputs_embeds + self.token_type_embeddings(token_type_ids)  # HF's order of summation
        x = x + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(x))


# -- the attention operation -------------------------------------------------------------------------


class EagerAttention:
    """softmax(q·kᵀ·scale + mask) → dropout → × head_mask → ·v, written out (the reference).

    Holds no parameters: projections live in the layer. Rows whose query sees no key (a fully
    padded sequence, or a left-padded position in a decoder) give zero context and zero weights.
    """

    capabilities: ClassVar[AttentionCapabilities] = EAGER_CAPABILITIES

    def __init__(self, spec: Any = None) -> None:
        del spec  # nothing to configure; the signature is the factory's

    def __repr__(self) -> str:
        return "EagerAttention()"

    def __call__(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        *,
        mask: AttentionMask,
        dropout_p: float,
        scale: float,
        need_weights: bool,
        head_mask: Tensor | None,
    ) -> tuple[Tensor, Tensor | None]:
        """q ``(B, h, S, d)``, k/v ``(B, h, S_k, d)`` → context ``(B, h, S, d)``, weights ``(B, h, S, S_k)``.

        Raises:
            InputError: packed ``(T, h, d)`` input (use a variable-length attention such as ``flash``).
        """
        if query.dim() != 4 or mask.cu_seqlens is not None:
            raise InputError(
                f"eager attention takes padded (B, h, S, d) tensors, got shape {tuple(query.shape)}"
                f"{' with cu_seqlens' if mask.cu_seqlens is not None else ''}; packed (T, h, d) input needs a "
                "variable-length attention such as 'flash'"
            )
        S, S_k = query.shape[-2], key.shape[-2]
        scores = torch.matmul(query, key.transpose(-1, -2)) * scale  # (B, h, S, S_k)
        bias = additive_mask(mask, S, S_k, scores.dtype, scores.device)  # (B|1, 1|h, S|1, S_k) or None
        if bias is not None:
            scores = scores + bias
        probs = torch.softmax(scores, dim=-1)
        empty = empty_rows(mask, S, S_k, scores.device)  # (B|1, 1|h, S|1, 1) or None
        if empty is not None:
            probs = probs.masked_fill(empty, 0.0)
        if dropout_p > 0.0:
            probs = F.dropout(probs, p=dropout_p, training=True)
        if head_mask is not None:
            probs = probs * head_mask  # (1, h, 1, 1): switch heads off (the pre-v5 definition)
        context = torch.matmul(probs, value)  # (B, h, S, d)
        return context, (probs if need_weights else None)


# -- the layer -----------------------------------------------------------------------------------------


class BertSelfAttention(nn.Module):
    """q/k/v projections around an attention op. Keys ``{attention,crossattention}.self.{query,key,value}``."""

    def __init__(self, spec: Any, attention: Attention, *, is_cross: bool = False) -> None:
        super().__init__()
        self.num_heads = spec.num_attention_heads
        self.head_dim = spec.hidden_size // spec.num_attention_heads
        self.scale = self.head_dim**-0.5
        self.dropout_p = spec.attention_probs_dropout_prob
        self.is_cross = is_cross
        self.query = nn.Linear(spec.hidden_size, spec.hidden_size)
        self.key = nn.Linear(spec.hidden_size, spec.hidden_size)
        self.value = nn.Linear(spec.hidden_size, spec.hidden_size)
        self.op = attention

    def _heads(self, x: Tensor) -> Tensor:
        B, S, _ = x.shape
        return x.view(B, S, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, S, d)

    def forward(
        self,
        hidden_states: Tensor,
        mask: AttentionMask,
        *,
        source: Tensor | None = None,
        cache: LayerCache | None = None,
        head_mask: Tensor | None = None,
        need_weights: bool = False,
        op: Attention | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """``(B, S, H)`` → ``(B, S, H)`` context (before the output projection) and weights or None.

        Packed ``(T, H)`` input (self-attention only, ``mask.cu_seqlens`` set) gives ``(T, H)``:
        q/k/v are ``(T, h, d)`` views, no transpose. ``source`` is the encoder states
        ``(B, S_enc, H)`` for cross-attention. A cache keeps self-attention K/V across steps and
        cross-attention K/V after the first step.
        """
        attend = op or self.op
        dropout_p = self.dropout_p if self.training else 0.0
        if hidden_states.dim() == 2:  # packed (T, H)
            if self.is_cross or cache is not None:
                raise InputError("packed (T, H) hidden states serve self-attention without a cache only")
            T, H = hidden_states.shape
            q, k, v = (linear(hidden_states, proj).view(T, self.num_heads, self.head_dim)
                       for proj in (self.query, self.key, self.value))  # (T, h, d)
            context, weights = attend(q, k, v, mask=mask, dropout_p=dropout_p, scale=self.scale,
                                      need_weights=need_weights, head_mask=head_mask)
            return context.reshape(T, H), weights  # (T, H)
        B, S, H = hidden_states.shape
        q = self._heads(linear(hidden_states, self.query))  # (B, h, S, d)
        if self.is_cross:
            kv = cache.cross() if cache is not None else None
            if kv is None:
                if source is None:
                    raise InputError("cross-attention needs encoder_hidden_states (B, S_enc, H) on the first step")
                kv = self._heads(linear(source, self.key)), self._heads(linear(source, self.value))  # (B, h, S_enc, d)
                if cache is not None:
                    cache.set_cross(*kv)
            k, v = kv
        else:
            k, v = self._heads(linear(hidden_states, self.key)), self._heads(linear(hidden_states, self.value))  # (B, h, S, d)
            if cache is not None:
                k, v = cache.update(k, v)  # (B, h, S_past + S, d)
        context, weights = attend(
            q, k, v,
            mask=mask,
            dropout_p=dropout_p,
            scale=self.scale,
            need_weights=need_weights,
            head_mask=head_mask,
        )
        return context.transpose(1, 2).reshape(B, S, H), weights  # (B, S, H)



class RenamedSelfAttention(BertSelfAttention):
    """BERT's self-attention under another family's checkpoint names, with its output projection.

    ``NAMES`` = (query, key, value, output) as the family's checkpoint spells them (DistilBERT's
    ``q_lin``..``out_lin``, MPNet's ``q``..``o``); :class:`BertSelfAttention`'s forward reads
    ``query``/``key``/``value``, which here are properties naming the family's modules.
    """

    NAMES: ClassVar[tuple[str, str, str, str]]

    query = property(lambda self: getattr(self, self.NAMES[0]))  # type: ignore[assignment]
    key = property(lambda self: getattr(self, self.NAMES[1]))  # type: ignore[assignment]
    value = property(lambda self: getattr(self, self.NAMES[2]))  # type: ignore[assignment]

    def __init__(self, spec: Any, attention: Attention) -> None:
        super().__init__(spec, attention)
        for bert_name, hf_name in zip(("query", "key", "value"), self.NAMES[:3], strict=True):
            self.add_module(hf_name, self._modules.pop(bert_name))
        self.add_module(self.NAMES[3], nn.Linear(spec.hidden_size, spec.hidden_size))

    def forward(self, hidden_states: Tensor, mask: AttentionMask, **kwargs: Any) -> tuple[Tensor, Tensor | None]:
        """``(B, S, H)`` or packed ``(T, H)`` → the projected context (same shape) and weights or None."""
        context, weights = super().forward(hidden_states, mask, **kwargs)
        return linear(context, getattr(self, self.NAMES[3])), weights

class BertSelfOutput(nn.Module):
    """dense → dropout → LayerNorm(· + residual). Keys ``*.output.{dense,LayerNorm}``."""

    def __init__(self, spec: Any, in_features: int | None = None) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features or spec.hidden_size, spec.hidden_size)
        self.LayerNorm = nn.LayerNorm(spec.hidden_size, eps=spec.layer_norm_eps)
        self.dropout = nn.Dropout(spec.hidden_dropout_prob)

    def forward(self, hidden_states: Tensor, residual: Tensor) -> Tensor:
        x = self.dropout(linear(hidden_states, self.dense))
        # without autograd, add the residual into the fresh projection output: one buffer less
        x = x + residual if x.requires_grad or residual.requires_grad else x.add_(residual)
        return self.LayerNorm(x)


BertOutput = BertSelfOutput  # the FFN output block is the same module with in_features = I


class BertAttention(nn.Module):
    """``self`` (projections + op) and ``output`` (dense, residual, LayerNorm)."""

    def __init__(self, spec: Any, attention: Attention, *, is_cross: bool = False) -> None:
        super().__init__()
        self.self = BertSelfAttention(spec, attention, is_cross=is_cross)
        self.output = BertSelfOutput(spec)

    def forward(self, hidden_states: Tensor, mask: AttentionMask, **kwargs: Any) -> tuple[Tensor, Tensor | None]:
        context, weights = self.self(hidden_states, mask, **kwargs)
        return self.output(context, hidden_states), weights


class BertIntermediate(nn.Module):
    """dense → activation. Key ``intermediate.dense``."""

    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.dense = nn.Linear(spec.hidden_size, spec.intermediate_size)
        self.act = get_activation(spec.hidden_act)

    def forward(self, hidden_states: Tensor) -> Tensor:
        if self.act is F.gelu:
            return linear(hidden_states, self.dense, gelu=True)  # (B, S, I) or packed (T, I)
        return self.act(linear(hidden_states, self.dense))


class BertLayer(nn.Module):
    """Post-LayerNorm BERT block: self-attention, optional cross-attention, feed-forward.

    Runs on padded ``(B, S, H)`` or packed ``(T, H)`` hidden states (registered with
    ``supports_packed=True``, so the trunk may pack). Packed calls carry a mask with
    ``cu_seqlens`` and need a variable-length attention op; cross-attention and caches are padded only.

    Args:
        spec: the model spec.
        attention: the attention op for self-attention.
        cross_attention: the op for cross-attention; when given, the layer has the
            ``crossattention.*`` modules (HF builds them iff ``add_cross_attention``).
    """

    def __init__(self, spec: Any, attention: Attention, cross_attention: Attention | None = None) -> None:
        super().__init__()
        self.attention = BertAttention(spec, attention)
        if cross_attention is not None:
            self.crossattention = BertAttention(spec, cross_attention, is_cross=True)
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
    ) -> LayerOutput:
        """``(B, S, H)`` → :class:`LayerOutput` ``(B, S, H)``; packed ``(T, H)`` → ``(T, H)``.

        Cross-attention runs when encoder states are given (as in HF; without them it is
        skipped). ``attention`` replaces the built op(s) for this call only (the trunk uses it
        to fall back to an implementation that returns weights).
        """
        x, self_weights = self.attention(
            hidden_states, mask,
            cache=past_key_value, head_mask=head_mask, need_weights=output_attentions, op=attention,
        )
        cross_weights = None
        if encoder_hidden_states is not None:
            if not hasattr(self, "crossattention"):
                raise InputError(
                    "encoder_hidden_states were given but this layer has no cross-attention; build the model "
                    "with is_decoder=True and add_cross_attention=True"
                )
            x, cross_weights = self.crossattention(
                x, encoder_mask if encoder_mask is not None else AttentionMask(),
                source=encoder_hidden_states, cache=past_key_value, head_mask=head_mask,
                need_weights=output_attentions, op=attention,
            )
        x = self.output(self.intermediate(x), x)  # FFN with residual and LayerNorm
        return LayerOutput(x, self_weights, cross_weights, past_key_value if use_cache else None)


# -- poolers -------------------------------------------------------------------------------------------
#
# Padded (B, S, H) with an optional (B, S) mask, or packed (T, H) with cu_seqlens → (B, H). The
# parameter-free math is bertzoo.heads.pooling.pool, shared with the heads and the main job.


class BertPooler(nn.Module):
    """tanh(dense(first token)): BERT's pooler, key ``pooler.dense``.

    Padded input: position 0 whatever the mask says, as HF does. Packed: each sequence's first token.
    """

    def __init__(self, spec: Any) -> None:
        super().__init__()
        self.dense = nn.Linear(spec.hidden_size, spec.hidden_size)
        self.activation = nn.Tanh()

    def forward(
        self, hidden_states: Tensor, attention_mask: Tensor | None = None, *, cu_seqlens: Tensor | None = None
    ) -> Tensor:
        first = pool(hidden_states, "cls", cu_seqlens=cu_seqlens)  # (B, H); the mask is ignored on purpose
        return self.activation(self.dense(first))


class _ModePooler(nn.Module):
    """A parameter-free pooler: :func:`~bertzoo.heads.pooling.pool` in one mode."""

    mode: ClassVar[str]

    def __init__(self, spec: Any = None) -> None:
        super().__init__()

    def forward(
        self, hidden_states: Tensor, attention_mask: Tensor | None = None, *, cu_seqlens: Tensor | None = None
    ) -> Tensor:
        return pool(hidden_states, self.mode, attention_mask=attention_mask, cu_seqlens=cu_seqlens)  # (B, H)


class ClsPooler(_ModePooler):
    """The first real token's hidden state (no parameters)."""

    mode = "cls"


class MeanPooler(_ModePooler):
    """Mean over real tokens: sentence-transformers' recipe, ``sum(h·m) / max(sum(m), 1e-9)``.

    Sums are taken in fp32 when the model runs in half precision.
    """

    mode = "mean"


class MaxPooler(_ModePooler):
    """Max over real tokens (padding excluded); a row with no real token gives ``-inf``."""

    mode = "max"
