"""BertModel: forward surface, outputs, input errors, cache handling, attention fallback, init."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

import bertzoo
from bertzoo.errors import IncompatibleComponentError, InputError
from bertzoo.interfaces import AttentionCapabilities
from bertzoo.model import BertModel, BertModelOutput, KVCache, init_weights
from bertzoo.plugins import eager, register_eager
from bertzoo.registry import PluginRegistrar, Registry

TINY: dict[str, Any] = dict(
    vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=37, max_position_embeddings=64, type_vocab_size=2,
)


def build(**overrides: Any) -> BertModel:
    torch.manual_seed(0)
    model = bertzoo.build({**TINY, **overrides}, attention="eager").eval()
    assert isinstance(model, BertModel)
    return model


@pytest.fixture(scope="module")
def encoder() -> BertModel:
    return build()


@pytest.fixture(scope="module")
def decoder() -> BertModel:
    return build(is_decoder=True, add_cross_attention=True)


def ids(B: int = 2, S: int = 6) -> torch.Tensor:
    return torch.randint(1, 100, (B, S), generator=torch.Generator().manual_seed(B * 100 + S))


# -- outputs --------------------------------------------------------------------------------------------


def test_output_reads_like_hf_model_output(encoder: BertModel) -> None:
    out = encoder(ids())
    assert isinstance(out, BertModelOutput)
    assert out[0] is out.last_hidden_state is out["last_hidden_state"]
    assert out[1] is out.pooler_output
    assert out.keys() == ["last_hidden_state", "pooler_output"] and len(out) == 2
    assert "pooler_output" in out and "attentions" not in out
    with pytest.raises(KeyError, match="attentions"):
        out["attentions"]
    assert out.to_tuple() == (out.last_hidden_state, out.pooler_output)
    assert list(out) == out.keys()
    as_tuple = encoder(ids(), return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 2
    torch.testing.assert_close(as_tuple[0], out.last_hidden_state)


def test_decoder_returns_cache_first_in_tuple(decoder: BertModel) -> None:
    out = decoder(ids(), output_hidden_states=True, output_attentions=True)
    assert isinstance(out.past_key_values, KVCache)
    assert out["cache"] is out.cache is out.past_key_values
    assert out.cross_attentions == ()  # no encoder states: cross-attention skipped (as in HF)
    tup = decoder(ids(), output_hidden_states=True, return_dict=False)
    assert isinstance(tup[2], KVCache) and len(tup[3]) == 3
    assert decoder(ids(), use_cache=False).past_key_values is None


def test_encoder_forces_use_cache_off_and_refuses_a_cache(encoder: BertModel) -> None:
    assert encoder(ids(), use_cache=True).past_key_values is None
    with pytest.raises(InputError, match="encoder"):
        encoder(ids(), past_key_values=KVCache(2))


def test_mask_dtypes_are_equivalent(encoder: BertModel) -> None:
    x = ids()
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    ref = encoder(x, attention_mask=mask).last_hidden_state
    for m in (mask.bool(), mask.float(), mask.int(), mask[:, None, None, :].bool().expand(2, 1, 6, 6)):
        torch.testing.assert_close(encoder(x, attention_mask=m).last_hidden_state, ref)


def test_fully_padded_row_is_finite_and_deterministic(encoder: BertModel) -> None:
    mask = torch.tensor([[0] * 6, [1] * 6])
    a = encoder(ids(), attention_mask=mask).last_hidden_state
    b = encoder(ids(), attention_mask=mask).last_hidden_state
    assert torch.isfinite(a).all() and torch.equal(a, b)


def test_dropout_active_only_in_training() -> None:
    model = build()
    model.train()
    x = ids()
    assert not torch.equal(model(x).last_hidden_state, model(x).last_hidden_state)
    model.eval()
    assert torch.equal(model(x).last_hidden_state, model(x).last_hidden_state)


# -- bad input ------------------------------------------------------------------------------------------


BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("neither", {}, "exactly one of input_ids"),
    ("both", {"input_ids": ids(), "inputs_embeds": torch.randn(2, 6, 32)}, "got both"),
    ("1-D ids", {"input_ids": torch.tensor([1, 2, 3])}, r"input_ids must be \(B, S\).*unsqueeze"),
    ("float ids", {"input_ids": torch.ones(2, 3)}, "input_ids must hold integers"),
    ("id >= vocab", {"input_ids": torch.tensor([[1, 100]])}, r"input_ids contains 100, outside \[0, vocab_size=100\)"),
    ("negative id", {"input_ids": torch.tensor([[-1, 2]])}, "input_ids contains -1"),
    ("type id", {"input_ids": ids(), "token_type_ids": torch.full((2, 6), 2)}, "type_vocab_size=2"),
    ("type shape", {"input_ids": ids(), "token_type_ids": torch.zeros(2, 5, dtype=torch.long)}, "token_type_ids must be"),
    ("position id", {"input_ids": ids(), "position_ids": torch.full((1, 6), 64)}, "max_position_embeddings=64"),
    ("too long", {"input_ids": torch.ones(1, 65, dtype=torch.long)}, "exceeds max_position_embeddings=64"),
    ("mask shape", {"input_ids": ids(), "attention_mask": torch.ones(2, 5)}, r"attention_mask must be \(B=2, S_k=6\)"),
    ("3-D mask", {"input_ids": ids(), "attention_mask": torch.ones(2, 6, 6)}, "3-D masks are not supported"),
    ("4-D int mask", {"input_ids": ids(), "attention_mask": torch.ones(2, 1, 6, 6, dtype=torch.long)}, "ambiguous"),
    ("additive 2-D", {"input_ids": ids(), "attention_mask": torch.tensor([[0.0] * 5 + [-1e9]] * 2)}, "negative values"),
    ("complex mask", {"input_ids": ids(), "attention_mask": torch.ones(2, 6, dtype=torch.complex64)}, "bool, integer or float"),
    ("embeds dim", {"inputs_embeds": torch.randn(2, 6, 31)}, r"inputs_embeds must be \(B, S, H=32\)"),
    ("empty", {"input_ids": torch.ones(2, 0, dtype=torch.long)}, "sequence length 0"),
    ("encoder states", {"input_ids": ids(), "encoder_hidden_states": torch.randn(2, 3, 32)}, "no cross-attention"),
    ("head mask", {"input_ids": ids(), "head_mask": torch.ones(3)}, r"head_mask must be \(heads=4,\)"),
    ("cache type", {"input_ids": ids(), "past_key_values": "nope"}, "past_key_values must be"),
]


@pytest.mark.parametrize("kwargs, match", [(k, m) for _, k, m in BAD_INPUTS], ids=[n for n, _, _ in BAD_INPUTS])
def test_bad_input_raises_input_error_naming_the_argument(kwargs: dict[str, Any], match: str, encoder: BertModel,
                                                          decoder: BertModel) -> None:
    model = decoder if "past_key_values" in kwargs else encoder
    with pytest.raises(InputError, match=match):
        model(**kwargs)


def test_cross_attention_input_errors(decoder: BertModel) -> None:
    x = ids()
    with pytest.raises(InputError, match=r"encoder_hidden_states must be \(B=2, S_enc, H=32\)"):
        decoder(x, encoder_hidden_states=torch.randn(2, 3, 16))
    with pytest.raises(InputError, match="without encoder_hidden_states"):
        decoder(x, encoder_attention_mask=torch.ones(2, 3))
    with pytest.raises(InputError, match=r"encoder_attention_mask must be \(B=2, S_k=3\)"):
        decoder(x, encoder_hidden_states=torch.randn(2, 3, 32), encoder_attention_mask=torch.ones(2, 4))


def test_cache_errors(decoder: BertModel) -> None:
    cache = decoder(ids(2, 4)).past_key_values
    with pytest.raises(InputError, match="not both"):
        decoder(ids(2, 1), past_key_values=cache, cache=cache)
    with pytest.raises(InputError, match=r"keys of shape \(2, 4, 4, 8\).*B=3"):
        decoder(ids(3, 1), past_key_values=cache)
    with pytest.raises(InputError, match="3 layer entries"):
        decoder(ids(2, 1), past_key_values=cache.to_legacy() + cache.to_legacy()[:1])
    with pytest.raises(InputError, match="KVCache for 3 layers"):
        decoder(ids(2, 1), past_key_values=KVCache(3))
    with pytest.raises(InputError, match=r"cache length \+ S = 5"):
        decoder(ids(2, 1), past_key_values=cache, attention_mask=torch.ones(2, 1))
    long_cache = decoder(torch.ones(1, 64, dtype=torch.long)).past_key_values
    with pytest.raises(InputError, match=r"1 \(\+ 64 cached\) = 65 exceeds"):
        decoder(torch.ones(1, 1, dtype=torch.long), past_key_values=long_cache)


def test_cache_alias_and_legacy_round_trip(decoder: BertModel) -> None:
    x = ids(2, 5)
    full = decoder(x).last_hidden_state
    cache = decoder(x[:, :3]).past_key_values
    step = decoder(x[:, 3:], cache=cache)
    torch.testing.assert_close(step.last_hidden_state, full[:, 3:], atol=1e-6, rtol=0)
    assert step.past_key_values is cache and cache.get_seq_length() == 5
    legacy = cache.to_legacy()
    assert len(legacy) == 2 and legacy[0][0].shape == (2, 4, 5, 8)
    rebuilt = KVCache.from_legacy(legacy, 2)
    assert rebuilt.get_seq_length() == 5 and rebuilt[1][1] is legacy[1][1]


def test_kv_cache_helpers() -> None:
    cache = KVCache(1)
    with pytest.raises(InputError, match="empty"):
        cache.to_legacy()
    k = torch.arange(2 * 1 * 3 * 1, dtype=torch.float32).view(2, 1, 3, 1)
    cache.update(k, k, 0)
    cache.cross_kv[0] = (k, k)
    cache.reorder_cache(torch.tensor([1, 1]))
    assert torch.equal(cache.self_kv[0][0][0], k[1]) and torch.equal(cache.cross_kv[0][0][1], k[1])
    cache.crop(2)
    assert cache.get_seq_length() == 2 and len(cache[0]) == 4
    with pytest.raises(InputError, match="key, value"):
        KVCache.from_legacy([(k,)], 1)


def test_cross_attention_cache_reuses_encoder_projections(decoder: BertModel) -> None:
    x, enc = ids(2, 4), torch.randn(2, 3, 32)
    out = decoder(x[:, :2], encoder_hidden_states=enc)
    cached_k = out.past_key_values.cross_kv[0][0]
    step = decoder(x[:, 2:], encoder_hidden_states=enc, past_key_values=out.past_key_values)
    assert step.past_key_values.cross_kv[0][0] is cached_k
    full = decoder(x, encoder_hidden_states=enc).last_hidden_state
    torch.testing.assert_close(step.last_hidden_state, full[:, 2:], atol=1e-6, rtol=0)


# -- attention capability fallback --------------------------------------------------------------------


class NoWeightsAttention(eager.EagerAttention):
    """An attention that (honestly) cannot return weights or apply a head mask."""

    capabilities: ClassVar[AttentionCapabilities] = AttentionCapabilities(returns_weights=False, head_mask=False)
    calls = 0

    def __call__(self, *args: Any, need_weights: bool, head_mask: Any, **kwargs: Any) -> Any:
        assert head_mask is None
        NoWeightsAttention.calls += 1
        ctx, _ = super().__call__(*args, need_weights=False, head_mask=None, **kwargs)
        return ctx, None


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    register_eager.bertzoo_register(PluginRegistrar(reg, "eager", "bertzoo"))
    PluginRegistrar(reg, "test", "test").register(
        "attention", "noweights", NoWeightsAttention,
        capabilities=NoWeightsAttention.capabilities.as_dict(), priority=100,
    )
    return reg


def test_auto_falls_back_per_call_for_weights_and_head_mask(registry: Registry) -> None:
    torch.manual_seed(0)
    model = bertzoo.build(dict(TINY), registry=registry).eval()
    assert model.attention_choice.record.full_name == "test:noweights" and model.attention_choice.auto
    reference = build()
    reference.load_state_dict(model.state_dict())
    x = ids()
    before = NoWeightsAttention.calls
    out = model(x, output_attentions=True)
    assert NoWeightsAttention.calls == before  # this call ran on the fallback
    assert "test:noweights cannot return attention weights" in model.attention_fallback
    ref = reference(x, output_attentions=True, head_mask=torch.tensor([1.0, 0.0, 1.0, 1.0]))
    got = model(x, output_attentions=True, head_mask=torch.tensor([1.0, 0.0, 1.0, 1.0]))
    for a, b in zip(ref.attentions, got.attentions, strict=True):
        torch.testing.assert_close(a, b)
    model(x)
    assert NoWeightsAttention.calls == before + 2  # plain calls use the built attention again
    torch.testing.assert_close(out.last_hidden_state, model(x).last_hidden_state)


def test_explicit_attention_without_capability_raises(registry: Registry) -> None:
    model = bertzoo.build(dict(TINY), attention="test:noweights", registry=registry).eval()
    assert not model.attention_choice.auto
    with pytest.raises(IncompatibleComponentError, match="named explicitly and cannot return attention weights"):
        model(ids(), output_attentions=True)
    with pytest.raises(IncompatibleComponentError, match="apply head_mask"):
        model(ids(), head_mask=torch.ones(4))


def test_layer_that_returns_no_weights_is_caught_without_a_choice() -> None:
    spec = bertzoo.resolve_spec(dict(TINY))
    model = BertModel(
        spec, embeddings=eager.BertEmbeddings(spec),
        layers=[eager.BertLayer(spec, attention=NoWeightsAttention()) for _ in range(2)],
    )
    with pytest.raises(IncompatibleComponentError, match="returned no attention weights"):
        model(ids(), output_attentions=True)


class TokenwisePooler(torch.nn.Module):
    """A broken pooler: returns every token's state (B, S, H) instead of one vector per sequence."""

    def __init__(self, spec: Any) -> None:
        super().__init__()

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return hidden_states


def test_a_pooler_output_of_the_wrong_shape_is_a_clear_error(registry: Registry) -> None:
    PluginRegistrar(registry, "test", "test").register("pooler", "tokenwise", TokenwisePooler)
    model = bertzoo.build(dict(TINY), attention="eager", pooler="tokenwise", registry=registry).eval()
    expected = r"pooler 'tokenwise' \(TokenwisePooler\) returned shape \(2, 6, 32\) .* must return \(B, H\) = \(2, 32\)"
    with pytest.raises(IncompatibleComponentError, match=expected):
        model(ids())


# -- init and conveniences ------------------------------------------------------------------------------


def test_init_weights_follows_hf_rules() -> None:
    model = build(initializer_range=0.0)  # falsy → 0.02, as HF
    words = model.embeddings.word_embeddings.weight
    assert words[0].abs().max() == 0  # padding row
    assert abs(float(words[1:].detach().std()) - 0.02) < 2e-3
    layer = model.encoder.layer[0]
    assert layer.attention.self.query.bias.abs().max() == 0
    assert torch.equal(layer.output.LayerNorm.weight, torch.ones(32))
    assert layer.output.LayerNorm.bias.abs().max() == 0
    assert abs(float(layer.intermediate.dense.weight.detach().std()) - 0.02) < 3e-3
    assert torch.equal(model.embeddings.position_ids[0], torch.arange(64))

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = torch.nn.Parameter(torch.ones(3))

        def _init_bertzoo_weights(self, spec: Any) -> None:
            self.bias.data.zero_()

    container = torch.nn.ModuleDict({"bert": model, "head": Head()})
    init_weights(container, model.spec)
    assert container["head"].bias.abs().max() == 0


def test_num_parameters_equals_transformers() -> None:
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertModel(transformers.BertConfig(**TINY))
    model = build()
    assert model.num_parameters() == hf.num_parameters()
    assert model.num_parameters(exclude_embeddings=True) == hf.num_parameters(exclude_embeddings=True)
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    assert model.get_input_embeddings() is model.embeddings.word_embeddings


def test_save_pretrained_delegates_to_checkpoint(tmp_path: Path) -> None:
    pytest.importorskip("bertzoo.checkpoint", reason="checkpoint I/O not installed in this tree")
    transformers = pytest.importorskip("transformers")
    model = build()
    model.save_pretrained(tmp_path / "out")
    hf = transformers.BertModel.from_pretrained(tmp_path / "out", attn_implementation="eager").eval()
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(hf(x).last_hidden_state, model(x).last_hidden_state, atol=1e-6, rtol=0)


def test_old_module_names_still_import_the_same_objects() -> None:
    import bertzoo.cache
    import bertzoo.masks
    import bertzoo.model.masks
    import bertzoo.model.packing

    assert bertzoo.cache.KVCache is KVCache and bertzoo.masks.Packing is bertzoo.model.packing.Packing
    for name in bertzoo.masks.__all__:
        assert getattr(bertzoo.masks, name) is (getattr(bertzoo.model.masks, name, None)
                                                or getattr(bertzoo.model.packing, name))
    assert "Deprecated location" in (bertzoo.masks.__doc__ or "") and "Deprecated location" in (bertzoo.cache.__doc__ or "")

