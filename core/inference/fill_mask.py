"""The ``fill-mask`` task, through the head's fill-mask contract (logits at mask positions only)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bertzoo.errors import InputError
from bertzoo.inference.batching import as_text_list, check_strings
from bertzoo.inference.engine import Engine

if TYPE_CHECKING:
    from torch import Tensor


def fill_mask(
    engine: Engine,
    texts: str | Iterable[str],
    *,
    top_k: int = 5,
    batch_tokens: int | None = None,
    progress: bool | None = None,
    threads: int | None = None,
) -> Any:
    """The most likely tokens for each mask token, as transformers' fill-mask pipeline gives them.

    Returns:
        Per text, a list of ``{"score", "token", "token_str", "sequence"}`` dicts, best first; a
        text with several masks gives one such list per mask (``sequence`` then keeps the other
        masks, as transformers does).

    Raises:
        InputError: a text without a mask token, or a bad option.
    """
    import torch

    engine.require("fill-mask")
    mask_logits = engine.contract("mask_logits")
    items, single = as_text_list(texts, "fill_mask")
    items = check_strings(items, "fill_mask")
    tokenizer = engine.tokenizer
    mask_id = tokenizer.mask_id
    if mask_id is None:
        raise InputError(f"the tokenizer of {str(engine.folder)!r} has no mask token; fill_mask needs one")
    if top_k < 1:
        raise InputError(f"top_k={top_k} must be at least 1")
    top_k = min(top_k, tokenizer.vocab_size)
    mask_token = tokenizer.special_tokens["mask"]
    results: list[Any] = [None] * len(items)
    if not items:
        return []
    enc = engine.tokenize(items)
    for i, ids in enumerate(enc.ids):
        if mask_id not in ids:
            raise InputError(
                f"fill_mask: text {i} ({items[i]!r:.60}) has no {mask_token} token"
                + (" left after truncation" if enc.truncated[i] else "")
                + f"; put {mask_token} where a word should be predicted"
            )
    with engine.running(threads):
        for batch in engine.batches(enc, batch_tokens, progress):
            states = engine.states(batch)
            where = states.input_ids == mask_id  # (T,) or (B, S)
            scores = engine.expect_shape(mask_logits(states, where), (int(where.sum()), None), "mask logits")
            values, tokens = scores.float().softmax(dim=-1).topk(min(top_k, scores.shape[-1]), dim=-1)  # (M, k)
            if states.cu_seqlens is not None:
                cu = states.cu_seqlens.to(where.device)
                rows = torch.searchsorted(cu, where.nonzero().squeeze(1), right=True) - 1
            else:
                rows = where.nonzero(as_tuple=True)[0]
            per_text: dict[int, list[int]] = {}
            for m, r in enumerate(rows.tolist()):
                per_text.setdefault(r, []).append(m)
            index = batch.index.tolist()
            for r, masks in per_text.items():
                results[index[r]] = _fill_results(engine, enc.ids[index[r]], masks, values, tokens, mask_id)
    return results[0] if single else results


def _fill_results(engine: Engine, ids: list[int], masks: list[int], values: Tensor, tokens: Tensor,
                  mask_id: int) -> Any:
    positions = [p for p, t in enumerate(ids) if t == mask_id]
    single_mask = len(positions) == 1
    out = []
    for pos, m in zip(positions, masks, strict=True):
        row = []
        for score, token in zip(values[m].tolist(), tokens[m].tolist(), strict=True):
            filled = list(ids)
            filled[pos] = token
            row.append({
                "score": score,
                "token": token,
                "token_str": engine.tokenizer.decode([token], skip_special_tokens=False),
                # like transformers: other masks stay visible when there are several
                "sequence": engine.tokenizer.decode(filled, skip_special_tokens=single_mask),
            })
        out.append(row)
    return out[0] if single_mask else out


__all__ = ["fill_mask"]
