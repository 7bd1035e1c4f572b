"""``include_prompt: false`` mechanics, on random states: the packed and the padded views pool the same
tokens (sentence-transformers' padded rule: the first ``prompt_length`` positions masked), windows skip
the prompt in a text's first window only, and a sequence the prompt fills keeps its last token."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertzoo.heads.pooling import pool
from bertzoo.inference.prompts import PromptedIds, exclude_leading, resolve_prompt, sequence_skips
from bertzoo.inference.tokenizer import FittedIds, TokenIds
from bertzoo.interfaces import TaskStates

LENGTHS = [7, 3, 5, 2]


def _states(seed: int = 0) -> tuple[TaskStates, TaskStates]:
    """The same random sequences as packed and as right-padded states."""
    gen = torch.Generator().manual_seed(seed)
    seqs = [torch.randn(n, 4, generator=gen) for n in LENGTHS]
    cu = torch.tensor([0, *np.cumsum(LENGTHS)], dtype=torch.int32)
    packed = TaskStates(torch.cat(seqs), torch.zeros(sum(LENGTHS), dtype=torch.long), cu_seqlens=cu)
    width = max(LENGTHS)
    hidden = torch.zeros(len(seqs), width, 4)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        hidden[i, :len(s)], mask[i, :len(s)] = s, 1
    return packed, TaskStates(hidden, torch.zeros_like(mask), attention_mask=mask)


@pytest.mark.parametrize("mode", ["mean", "cls", "max", "mean_sqrt_len_tokens"])
def test_packed_and_padded_views_pool_the_same_tokens(mode: str) -> None:
    packed, padded = _states()
    skip = torch.tensor([3, 0, 2, 5])  # the last one is longer than its sequence: its last token stays
    a = exclude_leading(packed, skip)
    b = exclude_leading(padded, skip)
    got_packed = pool(a.hidden, mode, cu_seqlens=a.cu_seqlens)
    got_padded = pool(b.hidden, mode, attention_mask=b.attention_mask)
    torch.testing.assert_close(got_packed, got_padded)
    # the reference: the tokens after the skip of each sequence, pooled alone
    seqs = torch.split(packed.hidden, LENGTHS)
    kept = [s[min(int(k), len(s) - 1):] for s, k in zip(seqs, skip, strict=True)]
    expected = torch.stack([pool(t[None], mode)[0] for t in kept])
    torch.testing.assert_close(got_packed, expected)
    assert a.cu_seqlens is not None and a.cu_seqlens.tolist() == [0, 4, 7, 10, 11]


def test_windows_skip_the_prompt_in_their_first_window_only() -> None:
    seqs = TokenIds([[1]] * 5, np.ones(5, dtype=np.int64), np.zeros(5, dtype=bool))
    windowed = FittedIds(seqs, np.ones(3, dtype=np.int64), np.zeros(3, dtype=bool), owner=np.array([0, 0, 0, 1, 2]))
    assert sequence_skips(windowed, 4).tolist() == [4, 0, 0, 4, 4]  # type: ignore[union-attr]
    whole = FittedIds(seqs, np.ones(5, dtype=np.int64), np.zeros(5, dtype=bool))
    assert sequence_skips(whole, 2).tolist() == [2] * 5  # type: ignore[union-attr]
    assert sequence_skips(whole, 0) is None
    assert PromptedIds(seqs, whole.tokens, whole.truncated, prompt_tokens=3).prompt_tokens == 3


def test_prompt_resolution_follows_sentence_transformers() -> None:
    prompts = {"query": "q: ", "doc": "d: "}
    assert resolve_prompt(prompts, "query") == "q: "
    assert resolve_prompt(prompts, "query", prompt_name="doc") == "d: "
    assert resolve_prompt(prompts, "query", prompt="x: ", prompt_name="doc") == "x: "  # prompt wins
    assert resolve_prompt(prompts, "query", prompt="") == ""  # an empty prompt keeps the default away
    assert resolve_prompt(prompts, None) is None
