"""The eager reference components: attention op, masks, activations, embeddings, layer, poolers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bertzoo.errors import InputError, SpecError
from bertzoo.interfaces import Attention, AttentionMask, Embedding, Layer, Pooler
from bertzoo.model.masks import additive_mask, boolean_mask, empty_rows, self_attention_mask
from bertzoo.plugins import eager
from bertzoo.plugins.activations import ACT2FN, get_activation
from bertzoo.spec import ACTIVATIONS, ModelSpec

SPEC = ModelSpec(
    vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
    max_position_embeddings=20, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
)


def qkv(B: int = 2, h: int = 2, S: int = 5, S_k: int = 5, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(B, h, n, d, generator=g) for n in (S, S_k, S_k))


def manual(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, -1).nan_to_num(0.0)  # rows with no key → 0
    return probs @ v


def run(mask: AttentionMask, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kw: object) -> tuple:
    args = dict(mask=mask, dropout_p=0.0, scale=q.shape[-1] ** -0.5, need_weights=True, head_mask=None)
    args.update(kw)
    return eager.EagerAttention()(q, k, v, **args)


def test_components_satisfy_their_protocols() -> None:
    assert isinstance(eager.EagerAttention(SPEC), Attention)
    assert isinstance(eager.BertEmbeddings(SPEC), Embedding)
    assert isinstance(eager.BertLayer(SPEC, attention=eager.EagerAttention()), Layer)
    for pooler in (eager.BertPooler(SPEC), eager.MeanPooler(SPEC), eager.ClsPooler(SPEC), eager.MaxPooler(SPEC)):
        assert isinstance(pooler, Pooler)


def test_attention_without_mask_is_plain_softmax_attention() -> None:
    q, k, v = qkv()
    ctx, w = run(AttentionMask(), q, k, v)
    torch.testing.assert_close(ctx, manual(q, k, v, None))
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 5))


def test_key_padding_and_fully_padded_rows_give_zeros() -> None:
    q, k, v = qkv()
    padding = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    ctx, w = run(AttentionMask(key_padding=padding), q, k, v)
    torch.testing.assert_close(ctx, manual(q, k, v, padding[:, None, None, :]))
    assert w[0, :, :, 3:].abs().max() == 0
    assert ctx[1].abs().max() == 0 and w[1].abs().max() == 0  # no visible key → zeros, not a uniform average


def test_causal_with_cache_offset() -> None:
    q, k, v = qkv(S=3, S_k=7)
    mask = AttentionMask(causal=True, query_offset=4)
    ctx, w = run(mask, q, k, v)
    allowed = torch.arange(7)[None, :] <= (torch.arange(3)[:, None] + 4)
    torch.testing.assert_close(ctx, manual(q, k, v, allowed))
    assert w[..., 0, 5:].abs().max() == 0 and w[..., 2, :].min() > 0


def test_causal_with_left_padding_zeroes_rows_that_see_nothing() -> None:
    q, k, v = qkv()
    padding = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    ctx, _ = run(AttentionMask(key_padding=padding, causal=True), q, k, v)
    allowed = padding[:, None, None, :] & (torch.arange(5)[None, :] <= torch.arange(5)[:, None])
    torch.testing.assert_close(ctx, manual(q, k, v, allowed))
    assert ctx[0, :, :2].abs().max() == 0


def test_explicit_masks_bool_and_additive_agree() -> None:
    q, k, v = qkv()
    allowed = torch.rand(2, 1, 5, 5, generator=torch.Generator().manual_seed(3)) > 0.3
    additive = torch.where(allowed, 0.0, torch.finfo(torch.float32).min)
    a, _ = run(AttentionMask(explicit=allowed), q, k, v)
    b, _ = run(AttentionMask(explicit=additive), q, k, v)
    torch.testing.assert_close(a, manual(q, k, v, allowed))
    torch.testing.assert_close(b, a)


def test_head_mask_scales_probabilities_and_need_weights() -> None:
    q, k, v = qkv()
    head_mask = torch.tensor([0.0, 0.5])[None, :, None, None]
    ctx, w = run(AttentionMask(), q, k, v, head_mask=head_mask)
    full, _ = run(AttentionMask(), q, k, v)
    assert ctx[:, 0].abs().max() == 0
    torch.testing.assert_close(ctx[:, 1], 0.5 * full[:, 1])
    torch.testing.assert_close(w[:, 1].sum(-1), torch.full((2, 5), 0.5))
    _, none = run(AttentionMask(), q, k, v, need_weights=False)
    assert none is None


def test_attention_dropout_only_when_asked() -> None:
    q, k, v = qkv()
    torch.manual_seed(0)
    dropped, w = run(AttentionMask(), q, k, v, dropout_p=0.5)
    plain, _ = run(AttentionMask(), q, k, v)
    assert not torch.allclose(dropped, plain)
    assert ((w == 0) | (w > 0)).all() and (w == 0).any()


def test_mask_conversions_are_cached_per_forward() -> None:
    mask = self_attention_mask(torch.tensor([[1, 1, 0]]), causal=True)
    first = additive_mask(mask, 3, 3, torch.float32, torch.device("cpu"))
    assert additive_mask(mask, 3, 3, torch.float32, torch.device("cpu")) is first
    assert first.shape == (1, 1, 3, 3) and first[0, 0, 0, 1] == torch.finfo(torch.float32).min
    assert additive_mask(mask, 3, 3, torch.bfloat16, torch.device("cpu")).dtype == torch.bfloat16
    assert boolean_mask(mask, 3, 3, torch.device("cpu")).dtype == torch.bool
    assert empty_rows(AttentionMask(causal=True), 3, 3, torch.device("cpu")) is None  # nothing to pay
    assert additive_mask(AttentionMask(), 3, 3, torch.float32, torch.device("cpu")) is None


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_equal_transformers(name: str) -> None:
    act2fn = pytest.importorskip("transformers.activations").ACT2FN
    x = torch.linspace(-6, 6, 1001)
    assert torch.equal(get_activation(name)(x), act2fn[name](x))


def test_the_spec_accepts_exactly_the_activation_table() -> None:
    # the spec keeps only the names (no torch in the contracts layer); the table is the one owner
    assert tuple(ACT2FN) == ACTIVATIONS
    assert eager.get_activation is get_activation  # the layer uses the table, not a copy


def test_unknown_activation_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="unknown activation 'gelu_foo'.*use one of gelu, gelu_new"):
        get_activation("gelu_foo")


def test_embeddings_buffers_positions_and_token_types() -> None:
    emb = eager.BertEmbeddings(SPEC).eval()
    assert "embeddings.position_ids" not in emb.state_dict() and "position_ids" not in emb.state_dict()
    assert set(emb.state_dict()) == {
        "word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight",
        "LayerNorm.weight", "LayerNorm.bias",
    }
    assert emb.word_embeddings.padding_idx == 0
    ids = torch.randint(0, 50, (2, 6))
    full = emb(ids)
    # positions offset by the cache length; token types default to zeros
    tail = emb(ids[:, 4:], past_key_values_length=4)
    torch.testing.assert_close(tail, full[:, 4:])
    torch.testing.assert_close(emb(ids, token_type_ids=torch.zeros_like(ids)), full)
    torch.testing.assert_close(emb(inputs_embeds=emb.word_embeddings(ids)), full)
    explicit = emb(ids, position_ids=torch.arange(6)[None] + 2)
    torch.testing.assert_close(explicit[:, :2], emb(ids[:, :2], past_key_values_length=2))


def test_layer_keys_are_hf_names_and_cross_attention_needs_modules() -> None:
    layer = eager.BertLayer(SPEC, attention=eager.EagerAttention())
    keys = set(layer.state_dict())
    assert "attention.self.query.weight" in keys and "attention.output.LayerNorm.bias" in keys
    assert "intermediate.dense.weight" in keys and "output.dense.weight" in keys
    assert layer.output.dense.weight.shape == (16, 24)
    assert not any(k.startswith("crossattention") for k in keys)
    x = torch.randn(2, 3, 16)
    with pytest.raises(InputError, match="no cross-attention"):
        layer(x, mask=AttentionMask(), encoder_hidden_states=torch.randn(2, 4, 16))
    cross = eager.BertLayer(SPEC, attention=eager.EagerAttention(), cross_attention=eager.EagerAttention())
    assert "crossattention.self.key.weight" in cross.state_dict()
    out = cross(x, mask=AttentionMask(), encoder_hidden_states=torch.randn(2, 4, 16), output_attentions=True)
    assert out.hidden_states.shape == (2, 3, 16) and out.cross_attention.shape == (2, 2, 3, 4)


def test_poolers() -> None:
    h = torch.randn(2, 4, 16)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    torch.testing.assert_close(eager.MeanPooler()(h, mask)[0], h[0, :2].mean(0))
    torch.testing.assert_close(eager.MeanPooler()(h), h.mean(1))
    torch.testing.assert_close(eager.MaxPooler()(h, mask)[0], h[0, :2].max(0).values)
    torch.testing.assert_close(eager.ClsPooler()(h, mask), h[:, 0])
    pooler = eager.BertPooler(SPEC)
    torch.testing.assert_close(pooler(h, mask), torch.tanh(pooler.dense(h[:, 0])))
    assert set(pooler.state_dict()) == {"dense.weight", "dense.bias"}
    half = eager.MeanPooler()(h.bfloat16(), mask)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), eager.MeanPooler()(h.bfloat16().float(), mask), atol=1e-2, rtol=0)


@pytest.mark.parametrize("name", ["BertPooler", "ClsPooler", "MeanPooler", "MaxPooler"])
def test_poolers_give_the_same_vectors_packed_and_padded(name: str) -> None:
    pooler = getattr(eager, name)(SPEC)
    h = torch.randn(3, 5, 16)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])  # right padding
    packed = h[mask.bool()]  # (T, H)
    cu = torch.tensor([0, 3, 8, 9], dtype=torch.int32)
    torch.testing.assert_close(pooler(packed, cu_seqlens=cu), pooler(h, mask), atol=1e-6, rtol=0)


def test_cls_pooler_takes_the_first_real_token_but_bert_pooler_keeps_hfs_position_zero() -> None:
    h = torch.randn(2, 4, 16)
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    torch.testing.assert_close(eager.ClsPooler()(h, left), torch.stack([h[0, 2], h[1, 0]]))
    pooler = eager.BertPooler(SPEC)
    torch.testing.assert_close(pooler(h, left), torch.tanh(pooler.dense(h[:, 0])))  # HF ignores the mask


def test_gelu_variants_differ_as_documented() -> None:
    x = torch.linspace(-3, 3, 101)
    assert not torch.equal(ACT2FN["gelu"](x), ACT2FN["gelu_new"](x))
    torch.testing.assert_close(ACT2FN["gelu_new"](x), F.gelu(x, approximate="tanh"), atol=1e-6, rtol=0)
    torch.testing.assert_close(ACT2FN["gelu_python"](x), F.gelu(x), atol=1e-6, rtol=0)
