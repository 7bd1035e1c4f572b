"""The assembled trunk: ``BertModel`` (embeddings → layers → optional pooler).

Read top to bottom: ``BertModel``'s constructor, forward, then the helpers the forward uses.
Outputs are in :mod:`bertzoo.model.outputs`, input checks in :mod:`bertzoo.model.inputs`, the
initialisation in :mod:`bertzoo.model.init`. The forward surface is HF transformers'
``BertModel`` (4.x argument order, which still has ``head_mask``), with the compatibility
decisions of DESIGN.md:

- ``head_mask`` is honoured (transformers 5 ignores it): it scales attention probabilities.
- ``past_key_values`` is the cache argument and output field; ``cache=`` is an alias.
- ``output_attentions=True`` never returns empty weights: an ``auto``-chosen attention that
  cannot return them is swapped for one that can, for that call; an explicitly named one raises.
- Query rows that see no key (fully padded) give zeros.

Other deliberate differences from transformers 5, all on bad input that transformers accepts
silently or fails on obscurely: ``encoder_hidden_states`` given to a model without
cross-attention, ``encoder_attention_mask`` without encoder states, a cache given to an encoder,
and a 2-D float mask with negative values (an additive mask in the wrong form) raise
:class:`~bertzoo.errors.InputError`. A 4-D bool mask is honoured as True = attend (transformers'
eager adds it as +1). A cross-attention model called without encoder states skips
cross-attention, as transformers does (a decoder can run stand-alone).

Packed execution (DESIGN "Speed"): when the model's attention choice names a variable-length
implementation for packed calls (``attention="flash"``, or ``"auto"`` for an encoder, see
:func:`bertzoo.selection.packed_choice`; the layer must be registered with
``supports_packed=True``) and the call needs nothing that only the padded path has (weights,
``head_mask``, a 4-D mask, a cache, encoder states, a mask with holes), the embeddings' real
tokens are gathered once into ``(T, H)`` and every layer runs on them; outputs are re-padded with
zeros at padding (real positions equal the padded path's within float rounding).
:meth:`BertModel.forward_packed` is the entry point for callers that hold packed batches already.

Shape legend: B batch, S new tokens, S_past cached tokens, S_enc encoder length, H hidden,
h heads, L layers, T real tokens of a packed batch.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from bertzoo.checkpoint.save import PretrainedMixin
from bertzoo.errors import IncompatibleComponentError, InputError
from bertzoo.interfaces import AttentionMask, LayerOutput, Positions
from bertzoo.model.cache import CacheHandle, KVCache
from bertzoo.model.inputs import check_inputs, check_packed_inputs, per_layer_head_mask, position_limit
from bertzoo.model.masks import cross_attention_mask, self_attention_mask
from bertzoo.model.outputs import BertModelOutput
from bertzoo.model.packing import OFFSETS, Packing, packing_from_mask
from bertzoo.model.routing import AttentionRouter

if TYPE_CHECKING:
    from bertzoo.selection import Choice


class BertEncoder(nn.Module):
    """Holds the layers as ``encoder.layer.N`` (HF's keys); the loop lives in :meth:`BertModel.forward`.

    ``schedule`` says which layer module runs at each step (default: each once, in order); with
    shared layers (ALBERT) a module runs several times and :attr:`depth` exceeds ``len(layer)``.
    """

    def __init__(self, layers: Sequence[nn.Module], schedule: Sequence[int] | None = None) -> None:
        super().__init__()
        self.layer = nn.ModuleList(layers)
        self.schedule: tuple[int, ...] = tuple(range(len(layers)) if schedule is None else schedule)
        if any(not 0 <= i < len(layers) for i in self.schedule):
            raise IncompatibleComponentError(
                f"layer schedule {self.schedule} names layers outside the {len(layers)} built; "
                "num_hidden_groups and inner_group_num must match the layers the factory built"
            )

    @property
    def depth(self) -> int:
        """Layer calls per forward (hidden_states has depth + 1 entries)."""
        return len(self.schedule)

    def calls(self) -> list[nn.Module]:
        """The layer modules in the order the forward runs them."""
        return [self.layer[i] for i in self.schedule]


class BertModel(PretrainedMixin, nn.Module):
    """Embeddings → L layers → optional pooler, assembled from built components.

    ``save_pretrained(dir)`` writes a HF-compatible folder (:class:`~bertzoo.checkpoint.save.PretrainedMixin`).

    Args:
        spec: the :class:`~bertzoo.spec.ModelSpec` it was built from.
        embeddings: the embedding component (``embeddings.*`` keys).
        layers: L layer components (``encoder.layer.N.*`` keys).
        pooler: the pooler component (``pooler.*`` keys) or None.
        final_norm: applied to the last layer's output (pre-LayerNorm blocks, key ``final_norm.*``);
            the factory asks the layer class for it (``final_norm(spec, **options)``). The last
            ``hidden_states`` entry is then the normed output, as transformers' ModernBERT returns it.

    Positions (DESIGN "Families"): an embedding with a ``position_state(position_ids, *, max_len,
    dtype)`` method gets it called once per forward; its :class:`~bertzoo.interfaces.Positions`
    (rotary positions, a relative position bias shared by every layer) goes to every layer call as
    ``positions=`` and its ``bias`` onto the self-attention mask. Padded calls pass the given
    ``position_ids`` or ``arange(past, past + S)``; packed calls each token's position within its
    sequence (``0 .. n - 1``, or the given ``position_ids`` packed).

    The factory sets ``attention_choice`` (a :class:`~bertzoo.selection.Choice`): whether the
    attention was picked by ``auto`` decides between falling back and raising when a call asks
    for a capability it lacks, and ``attention_choice.packed`` names the variable-length
    attention that runs packed calls (None: never packed). ``validate_inputs = False`` skips the
    value checks that need a host sync (ids within the vocabulary, ...); shape checks always run.
    ``pack_inputs = False`` turns packed execution off (every call runs padded);
    ``last_call_packed`` says whether the last :meth:`forward` ran packed.

    Packed entry point (for inference runners that batch by token budget)::

        model.forward_packed(input_ids, cu_seqlens, max_seqlen=None, token_type_ids=None,
                             position_ids=None) -> Tensor  # (T, H)

    ``input_ids`` ``(T,)`` are the sequences concatenated, ``cu_seqlens`` ``(B + 1,)`` their
    offsets; positions restart at 0 in each sequence. Sequence ``i``'s first ([CLS]) row is
    ``out[cu_seqlens[i]]``. :meth:`can_pack` says whether it can run.
    """

    def __init__(
        self, spec: Any, *, embeddings: nn.Module, layers: Sequence[nn.Module], pooler: nn.Module | None = None,
        final_norm: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.embeddings = embeddings
        self.encoder = BertEncoder(layers, getattr(spec, "layer_schedule", None))
        # before the pooler: HF's key order; None stays a plain attribute (no keys)
        self.final_norm: nn.Module | None = final_norm
        self.pooler = pooler
        self._router = AttentionRouter(spec, None)
        # a layer opts in to per-forward positions by taking ``positions=`` (BERT's layers do not)
        self._layers_take_positions = all(
            "positions" in inspect.signature(type(layer).forward).parameters for layer in layers
        )
        self.validate_inputs = True
        self.pack_inputs = True
        self.last_call_packed = False
        self.gradient_checkpointing = False
        self._checkpoint_kwargs: dict[str, Any] = {"use_reentrant": False}

    # -- the attention choice (set by the factory) -------------------------------------------------
    @property
    def attention_choice(self) -> Choice | None:
        return self._router.choice

    @attention_choice.setter
    def attention_choice(self, choice: Choice | None) -> None:
        self._router = AttentionRouter(self.spec, choice)  # a new choice forgets the ops built for the old one

    @property
    def attention_fallback(self) -> str | None:
        """Why the last call that needed a fallback attention switched, or None."""
        return self._router.fallback

    # -- conveniences ----------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def get_input_embeddings(self) -> nn.Module:
        words: nn.Module = getattr(self.embeddings, "word_embeddings")  # noqa: B009 (typed as Module)
        return words

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embeddings.word_embeddings = value

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None) -> None:
        """Recompute each layer in the backward pass instead of keeping its activations (training
        only; calls with a KV cache run normally). HF's ``use_reentrant`` defaults to False here."""
        self.gradient_checkpointing = True
        self._checkpoint_kwargs = {"use_reentrant": False, **(gradient_checkpointing_kwargs or {})}

    def gradient_checkpointing_disable(self) -> None:
        self.gradient_checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self.gradient_checkpointing

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Parameter count (tied parameters counted once), like HF's ``num_parameters``."""
        skip = {id(p) for m in self.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
        return sum(
            p.numel() for p in self.parameters()
            if (p.requires_grad or not only_trainable) and not (exclude_embeddings and id(p) in skip)
        )

    # -- forward ---------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        *,
        cache: Any = None,
        keep_padding: bool = False,
    ) -> BertModelOutput | tuple[Any, ...]:
        """Run the trunk. Arguments and outputs are HF ``BertModel``'s.

        Args:
            input_ids: ``(B, S)`` token ids; exactly one of this and ``inputs_embeds``.
            attention_mask: ``(B, S_past + S)`` (nonzero = real token) or a prepared 4-D
                ``(B|1, 1|h, S, S_past + S)`` mask (float additive, or bool True = attend).
            token_type_ids: ``(B, S)``; default zeros.
            position_ids: ``(B|1, S)``; default ``arange(S_past, S_past + S)``.
            head_mask: ``(h,)`` or ``(L, h)``; 0 switches a head off (scales its probabilities).
            inputs_embeds: ``(B, S, H)`` instead of the word-embedding lookup.
            encoder_hidden_states: ``(B, S_enc, H)`` for cross-attention (decoders built with it).
            encoder_attention_mask: ``(B, S_enc)`` or 4-D; default all visible.
            past_key_values: a cache (see :mod:`bertzoo.model.cache` for the accepted kinds). Alias: ``cache``.
            use_cache: return the cache (decoders only; default ``spec.use_cache``).
            output_attentions: return attention probabilities per layer.
            output_hidden_states: return the embeddings output and every layer's output.
            return_dict: False gives a tuple of the non-None fields (HF's order).
            keep_padding: run padded even when the call could run packed, so padded positions hold
                what transformers computes there (packed calls leave zeros); heads whose outputs or
                losses cover every position set it.

        Raises:
            InputError: bad shapes, dtypes, values or combinations (the message names the argument).
            IncompatibleComponentError: an explicitly named attention cannot return weights / apply head_mask.
        """
        spec = self.spec
        if cache is not None:
            if past_key_values is not None:
                raise InputError("give the cache as past_key_values or as cache (its alias), not both")
            past_key_values = cache
        use_cache = bool(spec.use_cache if use_cache is None else use_cache) if spec.is_decoder else False

        handle: CacheHandle | None = None
        if past_key_values is not None:
            if not spec.is_decoder:
                raise InputError(
                    "past_key_values was given to an encoder (is_decoder=False); a KV cache only serves "
                    "causal decoding: build with is_decoder=True or drop the cache"
                )
            handle = CacheHandle(past_key_values, self.encoder.depth)
        elif use_cache:
            handle = CacheHandle(KVCache(self.encoder.depth), self.encoder.depth)
        past = handle.seq_length if handle is not None else 0

        batch, seq = check_inputs(
            spec, input_ids, inputs_embeds, attention_mask, token_type_ids, position_ids,
            encoder_hidden_states, encoder_attention_mask, past, values=self.validate_inputs,
            max_positions=position_limit(self.embeddings, spec),
        )
        if handle is not None:
            handle.check(batch, spec.num_attention_heads, spec.hidden_size // spec.num_attention_heads)

        x = self.embeddings(
            input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds, past_key_values_length=past,
        )  # (B, S, H)

        packed = self._packed_plan(
            attention_mask, need_padded=bool(output_attentions) or head_mask is not None
            or handle is not None or encoder_hidden_states is not None or keep_padding, x=x,
        )
        self.last_call_packed = packed is not None
        hidden_states: list[Tensor] = [x]
        attentions: list[Tensor] = []
        cross_attentions: list[Tensor] = []
        if packed is not None:
            # Packed: real tokens only, (T, H), through every layer; re-padded at the end.
            packing, op = packed
            packed_mask = packing.attention_mask(causal=spec.is_decoder)
            extra: dict[str, Any] = {"attention": op} if op is not None else {}
            given = None if position_ids is None else packing.pack(position_ids.expand(batch, seq))  # (T,)
            extra.update(self._positions(packed_mask, given, packing.cu_seqlens, packing.total, x.dtype))
            h = packing.pack(x)  # (T, H)
            for layer in self.encoder.calls():
                h = self._call_layer(layer, h, mask=packed_mask, **extra).hidden_states
                if output_hidden_states:
                    hidden_states.append(packing.unpack(h))  # (B, S, H)
            if self.final_norm is not None:
                h = self.final_norm(h)
                if output_hidden_states:
                    hidden_states[-1] = packing.unpack(h)
            x = hidden_states[-1] if output_hidden_states else packing.unpack(h)  # (B, S, H), zeros at padding
        else:
            x = self._run_padded(
                x, attention_mask, head_mask, encoder_hidden_states, encoder_attention_mask, handle, past,
                use_cache, bool(output_attentions), bool(output_hidden_states), hidden_states, attentions,
                cross_attentions, position_ids,
            )
            if self.final_norm is not None:
                x = self.final_norm(x)
                if output_hidden_states:
                    hidden_states[-1] = x  # transformers' ModernBERT: the last entry is post-final-norm

        pooled = None
        if self.pooler is not None:
            pool_mask = attention_mask[:, -seq:] if attention_mask is not None and attention_mask.dim() == 2 else None
            pooled = self._pool(x, pool_mask)  # (B, H)

        output = BertModelOutput(
            last_hidden_state=x,
            pooler_output=pooled,
            past_key_values=handle.cache if (use_cache and handle is not None) else None,
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
            cross_attentions=tuple(cross_attentions) if output_attentions else None,
        )
        return output if return_dict is None or return_dict else output.to_tuple()

    def _run_padded(
        self,
        x: Tensor,
        attention_mask: Tensor | None,
        head_mask: Tensor | None,
        encoder_hidden_states: Tensor | None,
        encoder_attention_mask: Tensor | None,
        handle: CacheHandle | None,
        past: int,
        use_cache: bool,
        output_attentions: bool,
        output_hidden_states: bool,
        hidden_states: list[Tensor],
        attentions: list[Tensor],
        cross_attentions: list[Tensor],
        position_ids: Tensor | None = None,
    ) -> Tensor:
        """The padded layer loop: ``(B, S, H)`` → ``(B, S, H)``; appends to the output lists."""
        spec = self.spec
        # Masks are described once per forward; each attention converts (and caches) the form it needs.
        mask = self_attention_mask(attention_mask, causal=spec.is_decoder, query_offset=past)
        encoder_mask = cross_attention_mask(encoder_attention_mask) if encoder_hidden_states is not None else None
        head_masks = per_layer_head_mask(head_mask, self.encoder.depth, spec.num_attention_heads, x.dtype)
        override = self._router.for_call(output_attentions, head_mask is not None, x)
        extra: dict[str, Any] = {"attention": override} if override is not None else {}
        if position_ids is None and self._position_hook() is not None:
            position_ids = torch.arange(past, past + x.shape[1], device=x.device)[None]  # (1, S)
        extra.update(self._positions(mask, position_ids, None, x.shape[1], x.dtype))
        for i, layer in enumerate(self.encoder.calls()):
            out: LayerOutput = self._call_layer(
                layer,
                x,
                cached=handle is not None,
                mask=mask,
                head_mask=head_masks[i],
                encoder_hidden_states=encoder_hidden_states,
                encoder_mask=encoder_mask,
                past_key_value=handle.layers[i] if handle is not None else None,
                use_cache=use_cache,
                output_attentions=output_attentions,
                **extra,
            )
            x = out.hidden_states
            if output_hidden_states:
                hidden_states.append(x)
            if output_attentions:
                if out.self_attention is None:
                    raise IncompatibleComponentError(
                        f"layer {i} ({type(layer).__name__}) returned no attention weights although "
                        "output_attentions=True; build the model with attention='eager' or 'auto'"
                    )
                attentions.append(out.self_attention)
                if out.cross_attention is not None:
                    cross_attentions.append(out.cross_attention)
        return x

    def forward_packed(
        self,
        input_ids: Tensor,
        cu_seqlens: Tensor,
        max_seqlen: int | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> Tensor:
        """Run already packed sequences: ``(T,)`` ids → ``(T, H)`` last hidden states.

        No padding exists anywhere: the embeddings see the concatenated tokens with per-sequence
        positions, every layer runs on ``(T, H)`` and attention is variable-length. Equal, row
        for row, to ``forward`` on the padded batch (within float rounding).

        Args:
            input_ids: ``(T,)`` token ids, the batch's sequences concatenated.
            cu_seqlens: ``(B + 1,)`` integer offsets: sequence ``i`` is ``input_ids[cu[i]:cu[i+1]]``.
            max_seqlen: the longest sequence (optional; computed from ``cu_seqlens`` anyway).
            token_type_ids: ``(T,)``; default zeros.
            position_ids: ``(T,)``; default ``0 .. len - 1`` within each sequence.

        Raises:
            InputError: bad shapes, dtypes or values (the message names the argument).
            IncompatibleComponentError: the model has no variable-length attention for packed
                calls (built with a padded-only attention such as 'sdpa' or 'eager'), or a
                layer that cannot run packed.
        """
        spec = self.spec
        packing = check_packed_inputs(
            spec, input_ids, cu_seqlens, max_seqlen, token_type_ids, position_ids, values=self.validate_inputs,
            max_positions=position_limit(self.embeddings, spec),
        )
        total = input_ids.shape[0]
        dummy = torch.empty(0, device=input_ids.device, dtype=self.dtype)
        plan = self._router.packed_op(dummy) if self.pack_inputs else None
        if plan is None:
            raise IncompatibleComponentError(
                "forward_packed needs a variable-length attention and layers that run packed; this model "
                f"has {self._router.describe(pack_inputs=self.pack_inputs)}: build it with attention='auto' or "
                "'flash' and a layer registered with supports_packed=True"
            )
        op = plan[0]
        given_positions = position_ids
        if position_ids is None:
            lengths = packing.cu_seqlens.diff()
            starts = torch.repeat_interleave(packing.cu_seqlens[:-1].long(), lengths, output_size=total)
            # per-sequence 0 .. len-1, shifted by the embeddings' offset (RoBERTa's start at pad + 1)
            offset = int(getattr(self.embeddings, "position_offset", 0))
            position_ids = torch.arange(total, device=input_ids.device) - starts + offset  # (T,)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        h = self.embeddings(
            input_ids=input_ids[None], token_type_ids=token_type_ids[None], position_ids=position_ids[None]
        )[0]  # (T, H)
        mask = packing.attention_mask(causal=spec.is_decoder)
        extra: dict[str, Any] = {"attention": op} if op is not None else {}
        extra.update(self._positions(mask, given_positions, packing.cu_seqlens, total, h.dtype))
        for layer in self.encoder.calls():
            h = layer(h, mask=mask, **extra).hidden_states
        return h if self.final_norm is None else self.final_norm(h)

    def can_pack(self, device: Any = None, dtype: torch.dtype | None = None) -> bool:
        """Whether :meth:`forward_packed` (and packed :meth:`forward` calls) can run on
        ``device``/``dtype`` (default: the model's): a variable-length attention able to serve
        them, layers that run packed, and ``pack_inputs`` on."""
        probe = torch.empty(0, device=device or self.device, dtype=dtype or self.dtype)
        return self.pack_inputs and self._router.packed_op(probe) is not None

    # -- packed execution helpers --------------------------------------------------------------------
    def _packed_plan(self, attention_mask: Tensor | None, *, need_padded: bool, x: Tensor) -> tuple[Packing, Any] | None:
        """The packing and attention op of a packed call, or None to run padded.

        Padded when the call needs what only the padded path has (weights, head_mask, a cache,
        encoder states), a 4-D mask was given, the model has no variable-length attention, or a
        row's real tokens are not contiguous (a mask with holes).
        """
        if need_padded or (attention_mask is not None and attention_mask.dim() != 2):
            return None
        plan = self._router.packed_op(x) if self.pack_inputs else None
        if plan is None:
            return None
        packing = packing_from_mask(attention_mask, x.shape[0], x.shape[1], x.device)
        return None if packing is None else (packing, plan[0])

    # -- positions ---------------------------------------------------------------------------------
    def _position_hook(self) -> Any:
        hook = getattr(self.embeddings, "position_state", None)
        return hook if callable(hook) else None

    def _positions(self, mask: AttentionMask, position_ids: Tensor | None, cu_seqlens: Tensor | None, length: int,
                   dtype: torch.dtype) -> dict[str, Positions]:
        """``{"positions": ...}`` for the layer calls of one forward (empty when the embedding has no
        ``position_state``); its bias goes onto ``mask``.

        Padded: ``position_ids`` ``(B|1, S)``, ``length`` = S. Packed (``cu_seqlens`` given): the
        given ``(T,)`` positions or each token's index within its sequence; ``length`` = T.
        """
        hook = self._position_hook()
        if hook is None:
            return {}
        if cu_seqlens is None:
            assert position_ids is not None
            max_len = length
        else:
            offsets = mask.cache.get(OFFSETS) or [int(v) for v in cu_seqlens.tolist()]
            max_len = max((b - a for a, b in zip(offsets[:-1], offsets[1:], strict=True)), default=0)
            if position_ids is None:
                lengths = cu_seqlens.diff()
                starts = torch.repeat_interleave(cu_seqlens[:-1].long(), lengths, output_size=length)
                position_ids = torch.arange(length, device=cu_seqlens.device) - starts  # (T,)
        positions: Positions = hook(position_ids, max_len=max_len, dtype=dtype)
        if positions.bias is not None:
            mask.bias = positions.bias
        return {"positions": positions} if self._layers_take_positions else {}

    # -- forward helpers ---------------------------------------------------------------------------
    def _call_layer(self, layer: nn.Module, x: Tensor, *, cached: bool = False, **kwargs: Any) -> LayerOutput:
        """One layer call; under torch.utils.checkpoint when gradient checkpointing is on and the
        call trains (a cached call runs normally: recomputing it would append to the cache twice)."""
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled() and not cached:
            out: LayerOutput = checkpoint(layer, x, **self._checkpoint_kwargs, **kwargs)
            return out
        out = layer(x, **kwargs)
        return out

    def _pool(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """The pooler's ``(B, H)`` output, checked: a pooler of the wrong shape fails here, not in a head."""
        assert self.pooler is not None
        pooled = self.pooler(x, mask)
        expected = (x.shape[0], x.shape[-1])
        if not isinstance(pooled, Tensor) or tuple(pooled.shape) != expected:
            got = f"shape {tuple(pooled.shape)}" if isinstance(pooled, Tensor) else f"a {type(pooled).__name__}"
            pooler = self.spec.components.pooler
            name = pooler.name if pooler is not None else type(self.pooler).__name__
            raise IncompatibleComponentError(
                f"pooler {name!r} ({type(self.pooler).__name__}) returned {got} for hidden states of shape "
                f"{tuple(x.shape)}; a pooler must return (B, H) = {expected}: fix its forward (see "
                "bertzoo.interfaces.Pooler) or build with pooler='cls-tanh' / 'mean'"
            )
        return pooled
