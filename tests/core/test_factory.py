"""The factory: every accepted source, overrides, and the torchtune-style wiring of components."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import bertzoo
from bertzoo.errors import SpecError
from bertzoo.factory import assemble, build, resolve_spec
from bertzoo.registry import Registry
from bertzoo.spec import ModelSpec

TINY = {"hidden_size": 16, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 32, "vocab_size": 50}
ANY_DEVICE = {"devices": ["cpu", "cuda"], "dtypes": ["float32", "bfloat16", "float16"]}


class StubAttention(nn.Module):
    def __init__(self, spec: ModelSpec, **options: Any) -> None:
        super().__init__()
        self.options = options


class StubEmbedding(nn.Module):
    def __init__(self, spec: ModelSpec, **options: Any) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(spec.vocab_size, spec.hidden_size, padding_idx=spec.pad_token_id)
        self.LayerNorm = nn.LayerNorm(spec.hidden_size)
        self.options = options


class StubLayer(nn.Module):
    def __init__(self, spec: ModelSpec, *, attention: nn.Module, cross_attention: nn.Module | None, **options: Any) -> None:
        super().__init__()
        self.attention, self.crossattention, self.options = attention, cross_attention, options
        self.dense = nn.Linear(spec.hidden_size, spec.hidden_size)


class StubPooler(nn.Module):
    def __init__(self, spec: ModelSpec, **options: Any) -> None:
        super().__init__()
        self.dense = nn.Linear(spec.hidden_size, spec.hidden_size)


class StubHead(nn.Module):
    uses_pooler = False

    def __init__(self, bert: nn.Module, spec: ModelSpec, **options: Any) -> None:
        super().__init__()
        self.bert, self.options = bert, options
        self.classifier = nn.Linear(spec.hidden_size, options.get("num_labels", 2))


def stub_registry() -> Registry:
    r = Registry()
    r.register("embedding", "bert", StubEmbedding, plugin="bertzoo")
    r.register("layer", "bert", StubLayer, plugin="bertzoo")
    r.register("pooler", "cls-tanh", StubPooler, plugin="bertzoo")
    r.register("attention", "plain", StubAttention, plugin="bertzoo", capabilities=ANY_DEVICE, priority=1)
    r.register("attention", "weights", StubAttention, plugin="bertzoo",
               capabilities={**ANY_DEVICE, "returns_weights": True, "causal": True, "cross_attention": True,
                             "kv_cache": True}, priority=0)
    r.register("head", "stub", StubHead, plugin="bertzoo")
    r.register("preset", "stub-tiny", {"name": "stub-tiny", **TINY}, plugin="bertzoo", description="stub")
    r.register("preset", "stub-fn", lambda: {**TINY, "name": "stub-fn"}, plugin="bertzoo")
    r.register("preset", "stub-spec", ModelSpec.from_data({**TINY, "name": "stub-spec"}), plugin="bertzoo")
    r.register("preset", "stub-broken", 42, plugin="bertzoo")
    return r


# -- sources ------------------------------------------------------------------------------------------
def test_every_source_gives_the_same_spec(tmp_path: Path) -> None:
    reg = stub_registry()
    expected = resolve_spec("stub-tiny", registry=reg)
    assert expected.hidden_size == 16 and expected.name == "stub-tiny"
    path = tmp_path / "spec.yaml"
    expected.save(path)
    assert resolve_spec(path, registry=reg) == expected
    assert resolve_spec(str(path), registry=reg) == expected
    assert resolve_spec(expected.to_dict(), registry=reg) == expected
    assert resolve_spec(expected, registry=reg) == expected
    assert resolve_spec("bertzoo:stub-tiny", registry=reg) == expected
    assert resolve_spec("stub-fn", registry=reg).name == "stub-fn"
    assert resolve_spec("stub-spec", registry=reg).name == "stub-spec"


def test_source_errors() -> None:
    reg = stub_registry()
    with pytest.raises(SpecError) as info:
        resolve_spec("stub-tiyn", registry=reg)
    assert str(info.value).startswith("'stub-tiyn' is neither a preset nor a spec file; did you mean 'stub-tiny'")
    assert "Presets: stub-broken, stub-fn, stub-spec, stub-tiny." in str(info.value)
    with pytest.raises(SpecError, match="looks like a checkpoint folder or hub id: .*from_pretrained"):
        resolve_spec("google/bert-tiny", registry=reg)
    with pytest.raises(SpecError, match="does not exist"):
        resolve_spec("missing.yaml", registry=reg)
    with pytest.raises(SpecError, match="build\\(\\) got a int"):
        resolve_spec(3, registry=reg)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="preset bertzoo:stub-broken .* is a int, not spec data"):
        resolve_spec("stub-broken", registry=reg)
    reg.record_failure("foo", "ImportError: no foo", namespace="foo")
    with pytest.raises(SpecError, match="as a preset: preset 'foo:big' is not available because plugin 'foo' failed"):
        resolve_spec("foo:big", registry=reg)


def test_overrides_win_and_are_validated() -> None:
    reg = stub_registry()
    spec = resolve_spec("stub-tiny", {"num_hidden_layers": 1, "attention": "weights", "head": "stub"}, registry=reg)
    assert spec.num_hidden_layers == 1 and spec.components.attention.name == "weights"
    with pytest.raises(SpecError, match="unknown override 'num_labels'"):
        resolve_spec("stub-tiny", {"num_labels": 3}, registry=reg)  # the stub head declares no options model
    with pytest.raises(SpecError, match="components.attention.name: unknown attention 'sdpa'"):
        resolve_spec("stub-tiny", {"attention": "sdpa"}, registry=reg)


# -- assembly -------------------------------------------------------------------------------------------
def test_components_are_wired_as_arguments() -> None:
    reg = stub_registry()
    model = build("stub-tiny", registry=reg, attention="plain", pooler="cls-tanh")
    layers = model.encoder.layer
    assert len(layers) == 3 and all(isinstance(layer, StubLayer) for layer in layers)
    attentions = [layer.attention for layer in layers]
    assert len({id(a) for a in attentions}) == 3  # one attention per layer, not shared
    assert all(layer.crossattention is None for layer in layers)
    assert isinstance(model.pooler, StubPooler) and isinstance(model.embeddings, StubEmbedding)
    assert model.attention_choice.record.full_name == "bertzoo:plain" and not model.attention_choice.auto
    # HF initialisation ran: LayerNorm = 1/0, padding row of the embedding = 0
    assert torch.equal(model.embeddings.LayerNorm.weight, torch.ones(16))
    assert torch.equal(model.embeddings.word_embeddings.weight[0], torch.zeros(16))


def test_auto_attention_and_cross_attention() -> None:
    reg = stub_registry()
    model = build("stub-tiny", registry=reg)
    assert model.attention_choice.auto and model.attention_choice.record.full_name == "bertzoo:plain"  # higher priority
    decoder = build("stub-tiny", registry=reg, is_decoder=True, add_cross_attention=True)
    # only `weights` declares causal/cross-attention/kv-cache
    assert decoder.attention_choice.record.full_name == "bertzoo:weights"
    assert all(isinstance(layer.crossattention, StubAttention) for layer in decoder.encoder.layer)
    assert "bertzoo:plain: passed over: lacks causal, cross-attention, kv-cache" in decoder.attention_choice.explain()


def test_head_receives_the_trunk_and_skips_the_pooler() -> None:
    reg = stub_registry()
    model = build("stub-tiny", registry=reg, head="stub")
    assert isinstance(model, StubHead)
    assert model.bert.pooler is None  # StubHead.uses_pooler = False
    assert len(model.bert.encoder.layer) == 3


def test_assemble_to_dtype() -> None:
    reg = stub_registry()
    model = assemble(resolve_spec("stub-tiny", registry=reg), reg, dtype=torch.bfloat16)
    assert model.embeddings.word_embeddings.weight.dtype == torch.bfloat16


# -- the installed registry ------------------------------------------------------------------------------
def test_every_installed_preset_validates() -> None:
    presets = bertzoo.list_components("preset")
    assert {"bertzoo:bert-tiny", "bertzoo:bert-base-uncased", "bertzoo:minilm-l6-h384"} <= set(presets)
    for name in presets:
        spec = resolve_spec(name)
        assert spec.name == name.split(":", 1)[1]


def test_build_a_real_preset_with_overrides() -> None:
    model = bertzoo.build("bert-tiny", num_hidden_layers=1, attention="eager")
    assert type(model).__name__ == "BertModel"
    assert len(model.encoder.layer) == 1 and model.spec.hidden_size == 128
    assert model.attention_choice.record.full_name == "bertzoo:eager"
