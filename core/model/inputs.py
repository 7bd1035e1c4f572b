"""Input checks of the trunk's forward calls: free shape/dtype checks, then value checks in one host sync.

Every bad input becomes an :class:`~bertzoo.errors.InputError` naming the argument, its shape or
dtype, and what it must be. Shape legend: B batch, S new tokens, S_k keys (cache + new tokens, or
encoder length), H hidden, T real tokens of a packed batch.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from bertzoo.errors import InputError
from bertzoo.model.packing import Packing


def check_inputs(
    spec: Any,
    input_ids: Tensor | None,
    inputs_embeds: Tensor | None,
    attention_mask: Tensor | None,
    token_type_ids: Tensor | None,
    position_ids: Tensor | None,
    encoder_hidden_states: Tensor | None,
    encoder_attention_mask: Tensor | None,
    past: int,
    *,
    values: bool = True,
    max_positions: int | None | Literal["spec"] = "spec",
) -> tuple[int, int]:
    """Shape/dtype checks (free) and, when ``values``, value checks (one host sync, skipped while
    compiling). Returns (B, S).

    ``max_positions``: the longest input and the position-id bound (:func:`position_limit`; None:
    no position table, any length); ``"spec"``: ``spec.max_position_embeddings``.

    Raises:
        InputError: the message names the argument, what it is and what it must be.
    """
    H = spec.hidden_size
    E = getattr(spec, "embedding_size", None) or H  # inputs_embeds are embedding-wide (ELECTRA, ALBERT: E < H)
    if (input_ids is None) == (inputs_embeds is None):
        which = "both" if input_ids is not None else "neither"
        raise InputError(f"give exactly one of input_ids (B, S) or inputs_embeds (B, S, {E}); got {which}")
    if input_ids is not None:
        expect_tensor("input_ids", input_ids)
        if input_ids.dim() != 2:
            raise InputError(
                f"input_ids must be (B, S) token ids, got shape {tuple(input_ids.shape)}"
                + ("; add a batch dimension with input_ids.unsqueeze(0)" if input_ids.dim() == 1 else "")
            )
        expect_integer("input_ids", input_ids)
        batch, seq = input_ids.shape
    else:
        assert inputs_embeds is not None
        expect_tensor("inputs_embeds", inputs_embeds)
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != E:
            width = "E" if E != H else "H"
            raise InputError(f"inputs_embeds must be (B, S, {width}={E}), got shape {tuple(inputs_embeds.shape)}")
        if not inputs_embeds.is_floating_point():
            raise InputError(f"inputs_embeds must be floating point, got {inputs_embeds.dtype}")
        batch, seq = inputs_embeds.shape[:2]
    if seq == 0:
        raise InputError("the input has sequence length 0; give at least one token per sequence")
    if batch == 0:  # torch's reductions and reshapes fail on it with raw errors
        raise InputError("the input has batch size 0 (no sequences); give at least one sequence")
    total = past + seq
    max_pos = spec.max_position_embeddings if max_positions == "spec" else max_positions
    if position_ids is None and max_pos is not None and total > max_pos:
        cached = f" (+ {past} cached)" if past else ""
        raise InputError(
            f"sequence length {seq}{cached} = {total} exceeds max_position_embeddings={max_pos}; "
            f"truncate the input to {max_pos - past} tokens"
        )
    for name, ids in (("token_type_ids", token_type_ids), ("position_ids", position_ids)):
        if ids is None:
            continue
        expect_tensor(name, ids)
        expect_integer(name, ids)
        ok = ids.shape in ((batch, seq), (1, seq)) or (name == "position_ids" and ids.shape == (seq,))
        if not ok:
            raise InputError(f"{name} must be (B={batch}, S={seq}) like input_ids, got shape {tuple(ids.shape)}")
    if attention_mask is not None:
        check_mask("attention_mask", attention_mask, batch, seq, total, spec.num_attention_heads)
    if encoder_hidden_states is not None:
        expect_tensor("encoder_hidden_states", encoder_hidden_states)
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
            check_mask(
                "encoder_attention_mask", encoder_attention_mask, batch, seq, shape[1], spec.num_attention_heads
            )
    elif encoder_attention_mask is not None:
        raise InputError("encoder_attention_mask was given without encoder_hidden_states; give both or neither")
    if values and not torch.compiler.is_compiling():
        check_values(spec, input_ids, token_type_ids, position_ids, attention_mask, encoder_attention_mask,
                     max_positions=max_pos)
    return batch, seq

def check_values(
    spec: Any,
    input_ids: Tensor | None,
    token_type_ids: Tensor | None,
    position_ids: Tensor | None,
    attention_mask: Tensor | None,
    encoder_attention_mask: Tensor | None,
    *,
    max_positions: int | None | Literal["spec"] = "spec",
) -> None:
    """Ids within their tables and 2-D float masks without negative values, in one host sync.

    ``max_positions``: the bound of ``position_ids`` (None: unbounded above), as :func:`check_inputs`."""
    max_pos = spec.max_position_embeddings if max_positions == "spec" else max_positions
    # name -> (tensor, exclusive upper bound); min and max are fetched in one host sync
    bounded = [
        (name, t, limit) for name, t, limit in (
            ("input_ids", input_ids, spec.vocab_size),
            ("token_type_ids", token_type_ids, spec.type_vocab_size),
            ("position_ids", position_ids, max_pos),
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
        if low < 0 or (limit is not None and high >= limit):
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


def expect_tensor(name: str, value: Any) -> None:
    if not isinstance(value, Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def expect_integer(name: str, value: Tensor) -> None:
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise InputError(f"{name} must hold integers (torch.long), got {value.dtype}")


def check_mask(name: str, mask: Tensor, batch: int, seq: int, keys: int, heads: int) -> None:
    """2-D ``(B, S_k)`` or 4-D ``(B|1, 1|h, S, S_k)``; bool, integer or float (4-D: bool or float)."""
    expect_tensor(name, mask)
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


def check_packed_inputs(
    spec: Any,
    input_ids: Tensor,
    cu_seqlens: Tensor,
    max_seqlen: int | None,
    token_type_ids: Tensor | None,
    position_ids: Tensor | None,
    *,
    values: bool = True,
    max_positions: int | None | Literal["spec"] = "spec",
) -> Packing:
    """Checks of a packed call (``(T,)`` ids, ``(B + 1,)`` offsets); returns the batch's :class:`Packing`.

    Raises:
        InputError: bad shapes, dtypes or values (the message names the argument).
    """
    expect_tensor("input_ids", input_ids)
    expect_tensor("cu_seqlens", cu_seqlens)
    if input_ids.dim() != 1:
        raise InputError(f"forward_packed takes input_ids (T,) (sequences concatenated), got shape {tuple(input_ids.shape)}")
    expect_integer("input_ids", input_ids)
    if cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2:
        raise InputError(f"cu_seqlens must be (B + 1,) offsets with B >= 1, got shape {tuple(cu_seqlens.shape)}")
    expect_integer("cu_seqlens", cu_seqlens)
    total = input_ids.shape[0]
    if total == 0:  # as the padded forward refuses length 0; torch's reductions fail on it with raw errors
        raise InputError("forward_packed got no tokens (input_ids has T=0); give at least one token")
    packing = Packing.from_cu_seqlens(cu_seqlens.to(input_ids.device))  # one host read of the offsets
    offsets = packing.offsets
    if offsets[0] != 0 or offsets[-1] != total or any(b < a for a, b in zip(offsets[:-1], offsets[1:], strict=True)):
        raise InputError(
            f"cu_seqlens must start at 0, never decrease and end at T={total} (len(input_ids)); got "
            f"{offsets[:4]}{'...' if len(offsets) > 4 else ''} ending at {offsets[-1]}"
        )
    if max_seqlen is not None and max_seqlen < packing.max_seqlen:
        raise InputError(f"max_seqlen={max_seqlen} is below the longest sequence ({packing.max_seqlen}) in cu_seqlens")
    max_pos = spec.max_position_embeddings if max_positions == "spec" else max_positions
    if position_ids is None and max_pos is not None and packing.max_seqlen > max_pos:
        raise InputError(
            f"a sequence of {packing.max_seqlen} tokens exceeds max_position_embeddings={max_pos}; truncate it"
        )
    for name, ids in (("token_type_ids", token_type_ids), ("position_ids", position_ids)):
        if ids is not None:
            expect_tensor(name, ids)
            expect_integer(name, ids)
            if ids.shape != (total,):
                raise InputError(f"{name} must be (T={total},) like input_ids, got shape {tuple(ids.shape)}")
    if values and not torch.compiler.is_compiling():
        check_values(spec, input_ids, token_type_ids, position_ids, None, None, max_positions=max_pos)
    return packing


def position_limit(embeddings: Any, spec: Any) -> int | None:
    """The longest input an embedding takes: its ``max_positions`` when it declares one (None: no
    position table, e.g. rotary positions, so any length), else ``spec.max_position_embeddings``."""
    return getattr(embeddings, "max_positions", spec.max_position_embeddings)  # type: ignore[no-any-return]


def per_layer_head_mask(head_mask: Tensor | None, num_layers: int, heads: int, dtype: torch.dtype) -> list[Tensor | None]:
    """``(h,)`` or ``(L, h)`` → one ``(1, h, 1, 1)`` tensor per layer (transformers 4's ``get_head_mask``).

    Raises:
        InputError: any other shape.
    """
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
