"""``bertzoo.heads.pooling.pool``: the one pooling, against sentence-transformers' Pooling module.

Padded states (right and left padding) and the same real tokens packed with ``cu_seqlens``
must give sentence-transformers' vectors; half precision accumulates in float32; bad shapes
are InputErrors naming the fix.
"""

from __future__ import annotations

import warnings
from typing import get_args

import pytest
import torch

from bertzoo.errors import InputError
from bertzoo.heads.options import PoolingMode
from bertzoo.heads.pooling import POOLING_MODES, pool

st = pytest.importorskip("sentence_transformers")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # ST 6 moved it; the old path still works
    from sentence_transformers.models import Pooling

H = 8


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """(3, 6, H) states; row 0 right-padded, row 1 full, row 2 left-padded."""
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 6, H, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    return hidden, mask


def packed(hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The real tokens only, (T, H), and their (B + 1,) offsets."""
    tokens = torch.cat([hidden[i][mask[i].bool()] for i in range(hidden.shape[0])])
    cu = torch.zeros(hidden.shape[0] + 1, dtype=torch.int32)
    cu[1:] = mask.sum(1).cumsum(0)
    return tokens, cu


def st_pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    features = {"token_embeddings": hidden.clone(), "attention_mask": mask}
    return Pooling(H, pooling_mode=mode)(features)["sentence_embedding"]


def test_modes_are_the_options_modes() -> None:
    assert get_args(PoolingMode) == POOLING_MODES


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_padded_is_sentence_transformers_exactly(mode: str) -> None:
    hidden, mask = batch()
    assert torch.equal(pool(hidden, mode, attention_mask=mask), st_pool(hidden, mask, mode))


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_packed_matches_padded(mode: str) -> None:
    hidden, mask = batch()
    tokens, cu = packed(hidden, mask)
    # sums in another order: equal to rounding
    torch.testing.assert_close(pool(tokens, mode, cu_seqlens=cu), st_pool(hidden, mask, mode), atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_no_mask_means_every_token_is_real(mode: str) -> None:
    hidden, _ = batch()
    ones = torch.ones(hidden.shape[:2], dtype=torch.long)
    assert torch.equal(pool(hidden, mode), pool(hidden, mode, attention_mask=ones))


def test_cls_is_the_first_real_token_and_max_ignores_padding() -> None:
    hidden, mask = batch()
    hidden[0, 3:] = 100.0  # padding that max must not see
    assert torch.equal(pool(hidden, "cls", attention_mask=mask)[2], hidden[2, 2])
    assert torch.equal(pool(hidden, "max", attention_mask=mask)[0], hidden[0, :3].max(0).values)


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_half_precision_accumulates_in_float32(layout: str) -> None:
    hidden, mask = batch()
    half = hidden.bfloat16()
    if layout == "padded":
        args: dict[str, torch.Tensor] = {"attention_mask": mask}
        states = half
    else:
        states, cu = packed(half, mask)
        args = {"cu_seqlens": cu}
    default = pool(states, "mean", **args)
    assert default.dtype == torch.bfloat16  # the states' dtype, as sentence-transformers returns it
    wide = pool(states, "mean", dtype=torch.float32, **args)
    assert wide.dtype == torch.float32
    exact = (half.float() * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(wide, exact, atol=1e-6, rtol=0)
    assert torch.equal(default, wide.bfloat16())


def test_an_empty_row_gives_zeros_never_inf() -> None:
    """A row without real tokens pools to zeros (the trunk's rule for rows that see nothing); the
    fuzz suite found max giving -inf here."""
    hidden, mask = batch()
    mask[0] = 0
    assert torch.equal(pool(hidden, "mean", attention_mask=mask)[0], torch.zeros(H))
    assert torch.equal(pool(hidden, "max", attention_mask=mask)[0], torch.zeros(H))
    assert torch.isfinite(pool(hidden, "max", attention_mask=mask)).all()
    packed = torch.randn(5, H)
    empty_middle = torch.tensor([0, 3, 3, 5], dtype=torch.int32)
    assert torch.equal(pool(packed, "max", cu_seqlens=empty_middle)[1], torch.zeros(H))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda h, m, t, cu: pool(h, "median", attention_mask=m), "pooling mode 'median' is unknown; use one of mean"),
        (lambda h, m, t, cu: pool(t, "mean", attention_mask=m[:, :2]), "padded states must be"),
        (lambda h, m, t, cu: pool(h, "mean", attention_mask=m[:, :4]), r"attention_mask has shape \(3, 4\)"),
        (lambda h, m, t, cu: pool(h, "mean", cu_seqlens=cu), "packed states must be"),
        (lambda h, m, t, cu: pool(t, "mean", cu_seqlens=cu[:-1]), "cu_seqlens ends at"),
        (lambda h, m, t, cu: pool(t, "mean", cu_seqlens=cu.float()), "integer offsets"),
        (lambda h, m, t, cu: pool(t, "mean", attention_mask=m, cu_seqlens=cu), "not both"),
    ],
)
def test_bad_input_is_an_input_error(call: object, match: str) -> None:
    hidden, mask = batch()
    tokens, cu = packed(hidden, mask)
    with pytest.raises(InputError, match=match):
        call(hidden, mask, tokens, cu)  # type: ignore[operator]
