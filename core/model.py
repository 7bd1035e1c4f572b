"""The assembled trunk: ``BertModel``, its output type, and HF's weight initialisation.

Read top to bottom: the output dataclasses, then ``BertModel`` (constructor, forward, the
helpers the forward uses), then :func:`init_weights`. The forward surface is HF transformers'
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
:func:`bertzoo.selection.packed_choice`) and the call needs nothing that only the padded path has
(weights, ``head_mask``, a 4-D mask, a cache, encoder states, a mask with holes), the embeddings'
real tokens are gathered once into ``(T, H)`` and every layer runs on them; outputs are re-padded
with zeros at padding (real positions equal the padded path's within float rounding).
:meth:`BertModel.forward_packed` is the entry point for callers that hold packed batches already.

Shape legend: B batch, S new tokens, S_past cached tokens, S_enc encoder length, H hidden,
h heads, L layers, T real tokens of a packed batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from bertzoo.cache import CacheHandle, KVCache
from bertzoo.errors import IncompatibleComponentError, InputError
from bertzoo.interfaces import LayerOutput
from bertzoo.masks import Packing, cross_attention_mask, packing_from_mask, self_attention_mask

if TYPE_CHECKING:
    from bertzoo.selection import Choice

logger = logging.getLogger(__name__)


# -- outputs ----------------------------------------------------------------------------------------


@dataclass(eq=False)
class ModelOutput:
    """A dataclass that also reads like HF's ``ModelOutput``.

    ``out.field``, ``out["field"]`` and ``out[0]`` all work; integer indexing, iteration and
    :meth:`to_tuple` see only the fields that are not None, in declaration order (HF's rule).
    """

    _aliases = {"cache": "past_key_values"}

    def items(self) -> list[tuple[str, Any]]:
        return [(f.name, v) for f in fields(self) if (v := getattr(self, f.name)) is not None]

    def keys(self) -> list[str]:
        return [k for k, _ in self.items()]

    def values(self) -> list[Any]:
        return [v for _, v in self.items()]

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(self.values())

    def to_dict(self) -> dict[str, Any]:
        return dict(self.items())

    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            name = self._aliases.get(key, key)
            value = getattr(self, name, None) if name in {f.name for f in fields(self)} else None
            if value is None:
                raise KeyError(f"{key!r} is not set in this {type(self).__name__}; set fields: {', '.join(self.keys())}")
            return value
        return self.to_tuple()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.items())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._aliases.get(key, key) in self.keys()


@dataclass(eq=False)
class BertModelOutput(ModelOutput):
    """What :class:`BertModel` returns (HF's ``BaseModelOutputWithPoolingAndCrossAttentions``).

    Attributes:
        last_hidden_state: ``(B, S, H)``.
        pooler_output: ``(B, H)``, or None without a pooler.
        past_key_values: the cache, when ``use_cache`` (decoders only). Alias: ``cache``.
        hidden_states: L + 1 tensors ``(B, S, H)``: the embeddings, then each layer's output.
        attentions: L tensors ``(B, h, S, S_past + S)``: probabilities after dropout and head mask.
        cross_attentions: tensors ``(B, h, S, S_enc)`` for layers that ran cross-attention
            (``()`` when attentions were asked for but none ran, as transformers 5 does).
    """

    last_hidden_state: Tensor
    pooler_output: Tensor | None = None
    past_key_values: Any = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None
    cross_attentions: tuple[Tensor, ...] | None = None

    @property
    def cache(self) -> Any:
        return self.past_key_values


# -- the trunk ----------------------------------------------------------------------------------------


class BertEncoder(nn.Module):
    """Holds the layers as ``encoder.layer.N`` (HF's keys); the loop lives in :meth:`BertModel.forward`."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layer = nn.ModuleList(layers)


class BertModel(nn.Module):
    """Embeddings → L layers → optional pooler, assembled from built components.

    Args:
        spec: the :class:`~bertzoo.spec.ModelSpec` it was built from.
        embeddings: the embedding component (``embeddings.*`` keys).
        layers: L layer components (``encoder.layer.N.*`` keys).
        pooler: the pooler component (``pooler.*`` keys) or None.

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
        self, spec: Any, *, embeddings: nn.Module, layers: Sequence[nn.Module], pooler: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.spec = spec
        self.embeddings = embeddings
        self.encoder = BertEncoder(layers)
        self.pooler = pooler
        self.attention_choice: Choice | None = None
        self.attention_fallback: str | None = None  # why the last call switched attention, if it did
        self.validate_inputs = True
        self.pack_inputs = True
        self.last_call_packed = False
        self._fallback_ops: dict[tuple[Any, ...], Any] = {}

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

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Parameter count (tied parameters counted once), like HF's ``num_parameters``."""
        skip = {id(p) for m in self.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
        return sum(
            p.numel() for p in self.parameters()
            if (p.requires_grad or not only_trainable) and not (exclude_embeddings and id(p) in skip)
        )

    def save_pretrained(self, path: str | Path, **kwargs: Any) -> Any:
        """Write a HF-compatible folder (``config.json`` + ``model.safetensors``); see :func:`bertzoo.checkpoint.save_pretrained`."""
        from bertzoo.checkpoint import save_pretrained

        return save_pretrained(self, path, **kwargs)

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
            past_key_values: a cache (see :mod:`bertzoo.cache` for the accepted kinds). Alias: ``cache``.
            use_cache: return the cache (decoders only; default ``spec.use_cache``).
            output_attentions: return attention probabilities per layer.
            output_hidden_states: return the embeddings output and every layer's output.
            return_dict: False gives a tuple of the non-None fields (HF's order).

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
            handle = CacheHandle(past_key_values, len(self.encoder.layer))
        elif use_cache:
            handle = CacheHandle(KVCache(len(self.encoder.layer)), len(self.encoder.layer))
        past = handle.seq_length if handle is not None else 0

        batch, seq = self._check_inputs(
            input_ids, inputs_embeds, attention_mask, token_type_ids, position_ids,
            encoder_hidden_states, encoder_attention_mask, past,
        )
        if handle is not None:
            handle.check(batch, spec.num_attention_heads, spec.hidden_size // spec.num_attention_heads)

        x = self.embeddings(
            input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds, past_key_values_length=past,
        )  # (B, S, H)

        packed = self._packed_plan(
            attention_mask, need_padded=bool(output_attentions) or head_mask is not None
            or handle is not None or encoder_hidden_states is not None, x=x,
        )
        self.last_call_packed = packed is not None
        hidden_states: list[Tensor] = [x]
        attentions: list[Tensor] = []
        cross_attentions: list[Tensor] = []
        if packed is not None:
            # Packed: real tokens only, (T, H), through every layer; re-padded at the end.
            packing, op = packed
            packed_mask = packing.attention_mask(causal=spec.is_decoder)
            extra = {"attention": op} if op is not None else {}
            h = packing.pack(x)  # (T, H)
            for layer in self.encoder.layer:
                h = layer(h, mask=packed_mask, **extra).hidden_states
                if output_hidden_states:
                    hidden_states.append(packing.unpack(h))  # (B, S, H)
            x = hidden_states[-1] if output_hidden_states else packing.unpack(h)  # (B, S, H), zeros at padding
        else:
            x = self._run_padded(
                x, attention_mask, head_mask, encoder_hidden_states, encoder_attention_mask, handle, past,
                use_cache, bool(output_attentions), bool(output_hidden_states), hidden_states, attentions,
                cross_attentions,
            )

        pooled = None
        if self.pooler is not None:
            pool_mask = attention_mask[:, -seq:] if attention_mask is not None and attention_mask.dim() == 2 else None
            pooled = self.pooler(x, pool_mask)  # (B, H)

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
    ) -> Tensor:
        """The padded layer loop: ``(B, S, H)`` → ``(B, S, H)``; appends to the output lists."""
        spec = self.spec
        # Masks are described once per forward; each attention converts (and caches) the form it needs.
        mask = self_attention_mask(attention_mask, causal=spec.is_decoder, query_offset=past)
        encoder_mask = cross_attention_mask(encoder_attention_mask) if encoder_hidden_states is not None else None
        head_masks = self._per_layer_head_mask(head_mask, x.dtype)
        override = self._attention_for_call(output_attentions, head_mask is not None, x)
        extra = {"attention": override} if override is not None else {}
        for i, layer in enumerate(self.encoder.layer):
            out: LayerOutput = layer(
                x,
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
        _expect_tensor("input_ids", input_ids)
        _expect_tensor("cu_seqlens", cu_seqlens)
        if input_ids.dim() != 1:
            raise InputError(f"forward_packed takes input_ids (T,) (sequences concatenated), got shape {tuple(input_ids.shape)}")
        _expect_integer("input_ids", input_ids)
        if cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2:
            raise InputError(f"cu_seqlens must be (B + 1,) offsets with B >= 1, got shape {tuple(cu_seqlens.shape)}")
        _expect_integer("cu_seqlens", cu_seqlens)
        total = input_ids.shape[0]
        packing = Packing.from_cu_seqlens(cu_seqlens.to(input_ids.device))  # one host read of the offsets
        offsets = packing.offsets
        if offsets[0] != 0 or offsets[-1] != total or any(b < a for a, b in zip(offsets[:-1], offsets[1:], strict=True)):
            raise InputError(
                f"cu_seqlens must start at 0, never decrease and end at T={total} (len(input_ids)); got "
                f"{offsets[:4]}{'...' if len(offsets) > 4 else ''} ending at {offsets[-1]}"
            )
        if max_seqlen is not None and max_seqlen < packing.max_seqlen:
            raise InputError(f"max_seqlen={max_seqlen} is below the longest sequence ({packing.max_seqlen}) in cu_seqlens")
        if position_ids is None and packing.max_seqlen > spec.max_position_embeddings:
            raise InputError(
                f"a sequence of {packing.max_seqlen} tokens exceeds max_position_embeddings="
                f"{spec.max_position_embeddings}; truncate it"
            )
        for name, ids in (("token_type_ids", token_type_ids), ("position_ids", position_ids)):
            if ids is not None:
                _expect_tensor(name, ids)
                _expect_integer(name, ids)
                if ids.shape != (total,):
                    raise InputError(f"{name} must be (T={total},) like input_ids, got shape {tuple(ids.shape)}")
        if self.validate_inputs and not torch.compiler.is_compiling():
            self._check_values(input_ids, token_type_ids, position_ids, None, None)
        dummy = torch.empty(0, device=input_ids.device, dtype=self.dtype)
        plan = self._packed_attention(dummy)
        if plan is None:
            raise IncompatibleComponentError(
                "forward_packed needs a variable-length attention and layers that run packed; this model "
                f"has {self._attention_name()}: build it with attention='auto' or 'flash'"
            )
        op = plan[0]
        if position_ids is None:
            lengths = packing.cu_seqlens.diff()
            starts = torch.repeat_interleave(packing.cu_seqlens[:-1].long(), lengths, output_size=total)
            position_ids = torch.arange(total, device=input_ids.device) - starts  # (T,)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        h = self.embeddings(
            input_ids=input_ids[None], token_type_ids=token_type_ids[None], position_ids=position_ids[None]
        )[0]  # (T, H)
        mask = packing.attention_mask(causal=spec.is_decoder)
        extra = {"attention": op} if op is not None else {}
        for layer in self.encoder.layer:
            h = layer(h, mask=mask, **extra).hidden_states
        return h

    def can_pack(self, device: Any = None, dtype: torch.dtype | None = None) -> bool:
        """Whether :meth:`forward_packed` (and packed :meth:`forward` calls) can run on
        ``device``/``dtype`` (default: the model's): a variable-length attention able to serve
        them, layers that run packed, and ``pack_inputs`` on."""
        probe = torch.empty(0, device=device or self.device, dtype=dtype or self.dtype)
        return self._packed_attention(probe) is not None

    # -- packed execution helpers --------------------------------------------------------------------
    def _attention_name(self) -> str:
        choice = self.attention_choice
        return f"attention {choice.record.full_name!r}" if choice is not None else "no recorded attention choice"

    def _packed_attention(self, x: Tensor) -> tuple[Any] | None:
        """``(op,)`` for a packed call (op None = the layers' own attention), or None when this
        model cannot run packed on ``x``'s device and dtype. Decided once per device/dtype."""
        choice = self.attention_choice
        if choice is None or choice.packed is None or not self.pack_inputs:
            return None
        if not all(getattr(layer, "supports_packed", False) for layer in self.encoder.layer):
            return None
        key = ("packed", x.device.type, x.dtype)
        if key not in self._fallback_ops:
            from bertzoo.selection import request_for, unmet

            record = choice.packed
            request = request_for(self.spec, device=x.device, dtype=x.dtype, varlen=True)
            if unmet(record, request):
                self._fallback_ops[key] = None
            elif record is choice.record:
                self._fallback_ops[key] = (None,)  # the layers' own attention is variable-length
            else:
                self._fallback_ops[key] = (record.build(self.spec),)
        plan: tuple[Any] | None = self._fallback_ops[key]
        return plan

    def _packed_plan(self, attention_mask: Tensor | None, *, need_padded: bool, x: Tensor) -> tuple[Packing, Any] | None:
        """The packing and attention op of a packed call, or None to run padded.

        Padded when the call needs what only the padded path has (weights, head_mask, a cache,
        encoder states), a 4-D mask was given, the model has no variable-length attention, or a
        row's real tokens are not contiguous (a mask with holes).
        """
        if need_padded or (attention_mask is not None and attention_mask.dim() != 2):
            return None
        plan = self._packed_attention(x)
        if plan is None:
            return None
        packing = packing_from_mask(attention_mask, x.shape[0], x.shape[1], x.device)
        return None if packing is None else (packing, plan[0])

    # -- forward helpers ---------------------------------------------------------------------------
    def _per_layer_head_mask(self, head_mask: Tensor | None, dtype: torch.dtype) -> list[Tensor | None]:
        """``(h,)`` or ``(L, h)`` → one ``(1, h, 1, 1)`` tensor per layer (transformers 4's ``get_head_mask``)."""
        num_layers, heads = len(self.encoder.layer), self.spec.num_attention_heads
        if head_mask is None:
            return [None] * num_layers
        if head_mask.dim() == 1 and head_mask.shape[0] == heads:
            head_mask = head_mask.unsqueeze(0).expand(num_layers, heads)
        elif head_mask.shape != (num_layers, heads):
            raise InputError(
                f"head_mask must be (heads={heads},) or (layers={num_layers}, heads={heads}), "
                f"got shape {tuple(head_mask.shape)}"
            )
        return list(head_mask.to(dtype)[:, None, :, None, None].unbind(0))  # L × (1, h, 1, 1)

    def _attention_for_call(self, need_weights: bool, need_head_mask: bool, x: Tensor) -> Any:
        """None (use the built attention), or an attention able to serve this call.

        Only ``auto`` choices fall back; an explicitly named attention that lacks the capability raises.
        """
        choice = self.attention_choice
        if choice is None or not (need_weights or need_head_mask):
            return None
        caps = choice.record.capabilities
        lacks = [
            what for what, needed, cap in (
                ("return attention weights (output_attentions=True)", need_weights, "returns_weights"),
                ("apply head_mask", need_head_mask, "head_mask"),
            ) if needed and not caps.get(cap, False)
        ]
        if not lacks:
            return None
        if not choice.auto:
            raise IncompatibleComponentError(
                f"attention {choice.record.full_name!r} was named explicitly and cannot {' or '.join(lacks)}; "
                "build with attention='auto' (falls back per call) or attention='eager'"
            )
        key = (need_weights, need_head_mask, x.device.type, x.dtype)
        op = self._fallback_ops.get(key)
        if op is None:
            from bertzoo.discovery import get_registry
            from bertzoo.selection import choose, request_for

            request = request_for(
                self.spec, device=x.device, dtype=x.dtype, returns_weights=need_weights, head_mask=need_head_mask
            )
            fallback = choose(choice.registry or get_registry(), request)
            op = fallback.record.build(self.spec)
            self._fallback_ops[key] = op
            self.attention_fallback = (
                f"{choice.record.full_name} cannot {' or '.join(lacks)}; this call used {fallback.record.full_name}"
            )
            logger.info("attention fallback: %s", self.attention_fallback)
        return op

    def _check_inputs(
        self,
        input_ids: Tensor | None,
        inputs_embeds: Tensor | None,
        attention_mask: Tensor | None,
        token_type_ids: Tensor | None,
        position_ids: Tensor | None,
        encoder_hidden_states: Tensor | None,
        encoder_attention_mask: Tensor | None,
        past: int,
    ) -> tuple[int, int]:
        """Shape/dtype checks (free) and value checks (one host sync, skipped while compiling). Returns (B, S)."""
        spec = self.spec
        H = spec.hidden_size
        if (input_ids is None) == (inputs_embeds is None):
            which = "both" if input_ids is not None else "neither"
            raise InputError(f"give exactly one of input_ids (B, S) or inputs_embeds (B, S, {H}); got {which}")
        if input_ids is not None:
            _expect_tensor("input_ids", input_ids)
            if input_ids.dim() != 2:
                raise InputError(
                    f"input_ids must be (B, S) token ids, got shape {tuple(input_ids.shape)}"
                    + ("; add a batch dimension with input_ids.unsqueeze(0)" if input_ids.dim() == 1 else "")
                )
            _expect_integer("input_ids", input_ids)
            batch, seq = input_ids.shape
        else:
            assert inputs_embeds is not None
            _expect_tensor("inputs_embeds", inputs_embeds)
            if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != H:
                raise InputError(f"inputs_embeds must be (B, S, H={H}), got shape {tuple(inputs_embeds.shape)}")
            if not inputs_embeds.is_floating_point():
                raise InputError(f"inputs_embeds must be floating point, got {inputs_embeds.dtype}")
            batch, seq = inputs_embeds.shape[:2]
        if seq == 0:
            raise InputError("the input has sequence length 0; give at least one token per sequence")
        total = past + seq
        max_pos = spec.max_position_embeddings
        if position_ids is None and total > max_pos:
            cached = f" (+ {past} cached)" if past else ""
            raise InputError(
                f"sequence length {seq}{cached} = {total} exceeds max_position_embeddings={max_pos}; "
                f"truncate the input to {max_pos - past} tokens"
            )
        for name, ids in (("token_type_ids", token_type_ids), ("position_ids", position_ids)):
            if ids is None:
                continue
            _expect_tensor(name, ids)
            _expect_integer(name, ids)
            ok = ids.shape in ((batch, seq), (1, seq)) or (name == "position_ids" and ids.shape == (seq,))
            if not ok:
                raise InputError(f"{name} must be (B={batch}, S={seq}) like input_ids, got shape {tuple(ids.shape)}")
        if attention_mask is not None:
            _check_mask("attention_mask", attention_mask, batch, seq, total, spec.num_attention_heads)
        if encoder_hidden_states is not None:
            _expect_tensor("encoder_hidden_states", encoder_hidden_states)
            if not spec.add_cross_attention:
                raise InputError(
                    "encoder_hidden_states were given but the model has no cross-attention; build it with "
                    "is_decoder=True and add_cross_attention=True, or drop encoder_hidden_states"
                )
            shape = tuple(encoder_hidden_states.shape)
            if len(shape) != 3 or shape[0] != batch or shape[2] != H:
                raise InputError(f"encoder_hidden_states must be (B={batch}, S_enc, H={H}), got shape {shape}")
            if not encoder_hidden_states.is_floating_point():
                raise InputError(f"encoder_hidden_states must be floating point, got {encoder_hidden_states.dtype}")
            if encoder_attention_mask is not None:
                _check_mask(
                    "encoder_attention_mask", encoder_attention_mask, batch, seq, shape[1], spec.num_attention_heads
                )
        elif encoder_attention_mask is not None:
            raise InputError("encoder_attention_mask was given without encoder_hidden_states; give both or neither")
        if self.validate_inputs and not torch.compiler.is_compiling():
            self._check_values(input_ids, token_type_ids, position_ids, attention_mask, encoder_attention_mask)
        return batch, seq

    def _check_values(
        self,
        input_ids: Tensor | None,
        token_type_ids: Tensor | None,
        position_ids: Tensor | None,
        attention_mask: Tensor | None,
        encoder_attention_mask: Tensor | None,
    ) -> None:
        spec = self.spec
        # name -> (tensor, exclusive upper bound); min and max are fetched in one host sync
        bounded = [
            (name, t, limit) for name, t, limit in (
                ("input_ids", input_ids, spec.vocab_size),
                ("token_type_ids", token_type_ids, spec.type_vocab_size),
                ("position_ids", position_ids, spec.max_position_embeddings),
            ) if t is not None
        ]
        # 2-D float masks with negative entries are additive masks in the wrong form
        float_masks = [
            (name, m) for name, m in (("attention_mask", attention_mask), ("encoder_attention_mask", encoder_attention_mask))
            if m is not None and m.dim() == 2 and m.is_floating_point()
        ]
        if not bounded and not float_masks:
            return
        device = (bounded[0][1] if bounded else float_masks[0][1]).device
        stats = [s.to(device=device, dtype=torch.int64) for _, t, _ in bounded for s in (t.min(), t.max())]
        stats += [(m < 0).any().to(device=device, dtype=torch.int64) for _, m in float_masks]
        values = torch.stack(stats).tolist()
        for i, (name, _, limit) in enumerate(bounded):
            low, high = values[2 * i], values[2 * i + 1]
            if low < 0 or high >= limit:
                bad = low if low < 0 else high
                field = {"input_ids": "vocab_size", "token_type_ids": "type_vocab_size"}.get(name, "max_position_embeddings")
                raise InputError(
                    f"{name} contains {bad}, outside [0, {field}={limit}); "
                    + ("use the tokenizer that matches this model" if name == "input_ids" else f"keep {name} below {limit}")
                )
        for j, (name, _) in enumerate(float_masks):
            if values[2 * len(bounded) + j]:
                raise InputError(
                    f"{name} is a 2-D float mask with negative values (an additive mask?); give 1 for real tokens "
                    "and 0 for padding, or a prepared 4-D additive mask (B, 1, S, S_k)"
                )


def _expect_tensor(name: str, value: Any) -> None:
    if not isinstance(value, Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def _expect_integer(name: str, value: Tensor) -> None:
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise InputError(f"{name} must hold integers (torch.long), got {value.dtype}")


def _check_mask(name: str, mask: Tensor, batch: int, seq: int, keys: int, heads: int) -> None:
    """2-D ``(B, S_k)`` or 4-D ``(B|1, 1|h, S, S_k)``; bool, integer or float (4-D: bool or float)."""
    _expect_tensor(name, mask)
    shape = tuple(mask.shape)
    if mask.is_complex():
        raise InputError(f"{name} must be bool, integer or float, got {mask.dtype}")
    if mask.dim() == 2:
        if shape != (batch, keys):
            extra = f" (cache length + S = {keys})" if keys != seq and name == "attention_mask" else ""
            raise InputError(f"{name} must be (B={batch}, S_k={keys}){extra}, got shape {shape}")
    elif mask.dim() == 4:
        if shape[0] not in (1, batch) or shape[1] not in (1, heads) or shape[2:] != (seq, keys):
            raise InputError(f"a 4-D {name} must be (B={batch} or 1, 1 or heads={heads}, S={seq}, S_k={keys}), got {shape}")
        if not (mask.dtype == torch.bool or mask.is_floating_point()):
            raise InputError(
                f"a 4-D {name} must be float (additive: 0 = attend, large negative = masked) or bool "
                f"(True = attend), got {mask.dtype}; an integer 4-D mask is ambiguous"
            )
    else:
        raise InputError(
            f"{name} must be (B={batch}, S_k={keys}) or a prepared 4-D (B, 1, S, S_k) mask, got shape {shape}"
            + ("; 3-D masks are not supported (add a head dimension with mask[:, None])" if mask.dim() == 3 else "")
        )


# -- initialisation -------------------------------------------------------------------------------------


@torch.no_grad()
def init_weights(model: nn.Module, spec: Any) -> None:
    """HF ``_init_weights``: Linear/Embedding ~ N(0, std), biases 0, LayerNorm 1/0, padding row 0.

    ``std = spec.initializer_range or 0.02``. Embeddings are initialised last so a decoder tied
    to the word embeddings keeps its zero padding row. A module may define
    ``_init_bertzoo_weights(spec)`` for parameters of its own (e.g. an MLM bias = 0); it runs after.
    """
    std = spec.initializer_range or 0.02
    modules = list(model.modules())
    for module in modules:
        if isinstance(module, nn.Linear):
            module.weight.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.LayerNorm):
            if module.weight is not None:
                module.weight.fill_(1.0)
            if module.bias is not None:
                module.bias.zero_()
    for module in modules:
        if isinstance(module, nn.Embedding):
            module.weight.normal_(mean=0.0, std=std)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        positions, token_types = getattr(module, "position_ids", None), getattr(module, "token_type_ids", None)
        if isinstance(positions, Tensor):
            positions.copy_(torch.arange(positions.shape[-1]).expand_as(positions))
        if isinstance(token_types, Tensor):
            token_types.zero_()
    for module in modules:
        hook = getattr(module, "_init_bertzoo_weights", None)
        if callable(hook):
            hook(spec)
