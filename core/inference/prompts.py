"""Prompts, as sentence-transformers applies them: chosen, prepended, and (optionally) not pooled.

A sentence-transformers folder's ``config_sentence_transformers.json`` names its prompts (``{"query":
"query: ", ...}``) and a ``default_prompt_name``; :func:`resolve_prompt` picks the prompt of a call
with sentence-transformers' precedence (``prompt=`` over ``prompt_name=`` over the default; an empty
prompt means none). The prompt is prepended to every text before tokenizing, so it counts against
the maximum length as there.

When the folder's Pooling has ``include_prompt: false`` (INSTRUCTOR-style models), the prompt's
tokens are left out of pooling: :func:`prompt_length` counts them as sentence-transformers does (the
prompt tokenized alone, less a trailing special token, so ``[CLS]`` is among them), and
:func:`exclude_leading` hides that many leading tokens of each sequence from the head's embed
contract: zeroed in the pooling mask of padded states (sentence-transformers' own rule), dropped
from packed states. A text split into windows (``truncate="chunk"``) carries the prompt in its first
window only, so only that window skips it. A sequence is never skipped whole: if the prompt fills
it, its last token stays (sentence-transformers would pool nothing there and return zeros).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bertzoo.errors import InputError
from bertzoo.inference.tokenizer import FittedIds

if TYPE_CHECKING:
    from torch import Tensor

    from bertzoo.inference.tokenizer import Tokenizer
    from bertzoo.interfaces import TaskStates


@dataclass
class PromptedIds(FittedIds):
    """:class:`~bertzoo.inference.tokenizer.FittedIds` of prompted texts: ``prompt_tokens`` leading
    tokens of each text's first sequence are left out of pooling (0: all pooled, the usual case)."""

    prompt_tokens: int = 0


@dataclass(frozen=True)
class PromptSettings:
    """What a model folder says about prompts and similarity (all empty for a plain HF folder).

    Attributes:
        prompts: name -> prompt text, from ``config_sentence_transformers.json``.
        default_prompt_name: the prompt applied when a call names none.
        similarity_fn_name: the saved similarity function (None: not saved; cosine is used).
        include_prompt: Pooling's ``include_prompt`` (False: prompt tokens are not pooled).
        truncate_dim: the saved output width cut (None: full width).
    """

    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity_fn_name: str | None = None
    include_prompt: bool = True
    truncate_dim: int | None = None


@functools.lru_cache(maxsize=16)
def _settings(folder: str) -> PromptSettings:
    from bertzoo.checkpoint.sentence_transformers import read_sentence_transformers_info

    info = read_sentence_transformers_info(folder)
    if info is None:
        return PromptSettings()
    return PromptSettings(dict(info.prompts), info.default_prompt_name, info.similarity_fn_name,
                          info.include_prompt, info.truncate_dim)


def prompt_settings(folder: str | Path) -> PromptSettings:
    """The prompt settings of a model folder (read once per folder).

    Raises:
        CheckpointError: an unreadable ``config_sentence_transformers.json`` or pooling config.
    """
    return _settings(str(folder))


def resolve_prompt(prompts: Mapping[str, str], default_prompt_name: str | None, prompt: str | None = None,
                   prompt_name: str | None = None, *, model: str = "the model") -> str | None:
    """The prompt text of a call: ``prompt`` if given (even ``""``, which means none), else
    ``prompts[prompt_name]``, else the default prompt's text, else None (sentence-transformers'
    ``_resolve_prompt``).

    Raises:
        InputError: a ``prompt_name`` the model does not define (the message lists the known ones).
    """
    if prompt is not None:
        return prompt
    if prompt_name is not None:
        if prompt_name not in prompts:
            known = ", ".join(repr(k) for k in prompts) or "none"
            raise InputError(
                f"prompt_name={prompt_name!r} is not one of {model}'s prompts (known: {known}); pass one of "
                "those, or the text itself with prompt=..."
            )
        return prompts[prompt_name]
    if default_prompt_name is not None:
        return prompts.get(default_prompt_name)
    return None


def apply_prompt(texts: list[str], prompt: str | None) -> list[str]:
    """``prompt + text`` for each text (unchanged when the prompt is None or empty)."""
    return [prompt + t for t in texts] if prompt else texts


def prompt_length(tokenizer: Tokenizer, prompt: str | None) -> int:
    """Tokens of ``prompt`` as sentence-transformers counts them for ``include_prompt=False``: the
    prompt tokenized alone (cut at the maximum length), less a trailing special token. 0 for no prompt."""
    if not prompt:
        return 0
    ids = tokenizer.encode_ids([prompt]).ids[0]
    specials = {i for i in (tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id, tokenizer.unk_id,
                            tokenizer.pad_id) if i is not None}
    specials.update(i for i, tok in tokenizer.backend.get_added_tokens_decoder().items() if tok.special)
    return len(ids) - 1 if ids and ids[-1] in specials else len(ids)


def sequence_skips(fitted: FittedIds, skip: int) -> np.ndarray | None:
    """Leading tokens to hide from pooling for each sequence of ``fitted``: ``skip`` for each text's
    first sequence, 0 for its later windows; None when nothing is hidden."""
    if skip <= 0:
        return None
    count = len(fitted.sequences)
    if fitted.owner is None:
        return np.full(count, skip, dtype=np.int64)
    owner = fitted.owner
    first = np.ones(count, dtype=bool)
    first[1:] = owner[1:] != owner[:-1]  # owners come in order: a text's windows are consecutive
    return np.where(first, skip, 0).astype(np.int64)


def exclude_leading(states: TaskStates, skip: Tensor) -> TaskStates:
    """``states`` with the first ``skip[b]`` tokens of sequence ``b`` hidden from pooling.

    Padded states keep their tensors and get a pooling mask with those positions zeroed (the trunk
    has already run, so the mask only tells the head what to pool); packed states lose those tokens
    (``hidden``, ids and token types filtered, ``cu_seqlens`` recomputed). Each sequence keeps at least
    its last token.
    """
    import torch

    if states.cu_seqlens is not None:
        cu = states.cu_seqlens.to(torch.long)
        lengths = cu.diff()  # (B,)
        cut = torch.minimum(skip.to(lengths.device), (lengths - 1).clamp(min=0))
        segment = torch.repeat_interleave(torch.arange(len(lengths), device=cu.device), lengths,
                                          output_size=int(states.hidden.shape[0]))  # (T,)
        position = torch.arange(states.hidden.shape[0], device=cu.device) - cu[:-1][segment]  # (T,)
        keep = position >= cut[segment]
        new_cu = torch.zeros_like(states.cu_seqlens)
        new_cu[1:] = torch.cumsum(lengths - cut, 0).to(new_cu.dtype)
        types = states.token_type_ids[keep] if states.token_type_ids is not None else None
        return replace(states, hidden=states.hidden[keep], input_ids=states.input_ids[keep], cu_seqlens=new_cu,
                       token_type_ids=types)
    mask = states.attention_mask
    if mask is None:
        mask = torch.ones(states.hidden.shape[:-1], dtype=torch.long, device=states.hidden.device)
    lengths = mask.sum(dim=1)  # (B,) right padding: real tokens come first
    cut = torch.minimum(skip.to(mask.device), (lengths - 1).clamp(min=0))
    position = torch.arange(mask.shape[1], device=mask.device)[None, :]
    pooled = mask.masked_fill(position < cut[:, None], 0)
    return replace(states, attention_mask=pooled)


__all__ = ["PromptSettings", "PromptedIds", "apply_prompt", "exclude_leading", "prompt_length", "prompt_settings",
           "resolve_prompt", "sequence_skips"]
