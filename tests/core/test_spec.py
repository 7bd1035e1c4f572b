"""ModelSpec: validation with paths, round-trips, overrides, second-pass options, HF config mapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from bertzoo.errors import SpecError
from bertzoo.registry import Registry
from bertzoo.spec import ComponentSpec, ModelSpec, apply_overrides, read_spec_file, validate_components


class WindowOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: int = Field(8, gt=0)
    dropout: float = 0.0


class LenientOptions(BaseModel):  # pydantic's default extra="ignore": misspelt keys must still fail
    scale: float = 1.0


class HeadOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_labels: int = 2
    dropout: float | None = None


@pytest.fixture
def reg() -> Registry:
    r = Registry()
    for kind, name in [("embedding", "bert"), ("layer", "bert"), ("pooler", "cls-tanh"), ("pooler", "mean"),
                       ("attention", "eager")]:
        r.register(kind, name, "nowhere:Thing", plugin="bertzoo")
    r.register("attention", "windowed", "nowhere:Windowed", plugin="test", options=WindowOptions)
    r.register("attention", "lenient", "nowhere:Lenient", plugin="test", options=LenientOptions)
    r.register("head", "sequence-classification", "nowhere:Head", plugin="bertzoo", options=HeadOptions)
    r.register("head", "plain", "nowhere:Plain", plugin="bertzoo")
    return r


TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "vocab_size": 99}


def full_spec() -> ModelSpec:
    return ModelSpec.model_validate({
        **TINY, "name": "t", "pad_token_id": None, "classifier_dropout": 0.2,
        "components": {"attention": {"name": "windowed", "options": {"window": 4}}, "pooler": None,
                       "head": {"name": "sequence-classification", "options": {"num_labels": 3}}},
    })


# -- validation ---------------------------------------------------------------------------------
def test_defaults_are_bert_base() -> None:
    spec = ModelSpec()
    assert (spec.hidden_size, spec.num_hidden_layers, spec.num_attention_heads, spec.head_dim) == (768, 12, 12, 64)
    comps = spec.components
    assert (comps.embedding.name, comps.attention.name, comps.layer.name) == ("bert", "auto", "bert")
    assert comps.pooler == ComponentSpec(name="cls-tanh") and comps.head is None


def test_field_errors_carry_paths() -> None:
    with pytest.raises(SpecError) as info:
        ModelSpec.from_data({"hidden_size": -1, "components": {"attention": {"name": "x", "window": 3}}})
    msg = str(info.value)
    assert msg.startswith("invalid spec: ")
    assert "hidden_size: Input should be greater than 0" in msg
    assert "components.attention.window: Extra inputs are not permitted" in msg


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"hidden_sise": 3}, "hidden_sise: Extra inputs are not permitted"),
        ({"components": {"attn": "sdpa"}}, "components.attn: Extra inputs are not permitted"),
        ({"hidden_size": 100, "num_attention_heads": 12}, "hidden_size (100) must be divisible by num_attention_heads (12)"),
        ({"add_cross_attention": True}, "needs is_decoder=True"),
        ({"pad_token_id": 5, "vocab_size": 5}, "pad_token_id (5) must be in [0, vocab_size=5)"),
        ({"hidden_act": "gelu2"}, "hidden_act: Value error, unknown activation 'gelu2'"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob: Input should be less than or equal to 1"),
    ],
)
def test_invalid_specs(data: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        ModelSpec.from_data(data)
    assert message in str(info.value)


def test_bare_component_names() -> None:
    spec = ModelSpec.from_data({"components": {"attention": "sdpa", "head": "plain", "pooler": "none"}})
    assert spec.components.attention == ComponentSpec(name="sdpa")
    assert spec.components.head == ComponentSpec(name="plain")
    assert spec.components.pooler is None


# -- round trips ----------------------------------------------------------------------------------
def test_round_trip_dict_and_json() -> None:
    spec = full_spec()
    assert ModelSpec.from_data(spec.to_dict()) == spec
    assert ModelSpec.model_validate_json(spec.to_json()) == spec
    assert ModelSpec.from_data(json.loads(spec.to_json())) == spec


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml", ".toml"])
@pytest.mark.parametrize("make", [full_spec, ModelSpec], ids=["full", "default"])
def test_round_trip_files(tmp_path: Path, suffix: str, make: object) -> None:
    spec = make()  # type: ignore[operator]
    path = tmp_path / f"spec{suffix}"
    spec.save(path)
    assert ModelSpec.load(path) == spec


def test_toml_writes_none_for_absent_non_default_values(tmp_path: Path) -> None:
    text = full_spec().to_toml()
    assert 'pad_token_id = "none"' in text and 'pooler = "none"' in text
    assert "head" in text and "null" not in text


def test_spec_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        ModelSpec.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("hidden_size: [1, 2\n")
    with pytest.raises(SpecError, match="is not valid YAML"):
        ModelSpec.load(bad)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(SpecError, match="must hold a mapping at top level, not list"):
        read_spec_file(listed)
    other = tmp_path / "spec.txt"
    other.write_text("x")
    with pytest.raises(SpecError, match="unknown suffix '.txt'"):
        ModelSpec.load(other)
    with pytest.raises(SpecError, match="unknown suffix"):
        ModelSpec().save(tmp_path / "spec.ini")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('hidden_size = 30\nnum_attention_heads = 4\n')
    with pytest.raises(SpecError, match=f"invalid {wrong}: <root>: Value error, hidden_size \\(30\\) must be divisible"):
        ModelSpec.load(wrong)


# -- second pass: component names and options -----------------------------------------------------
def test_options_are_validated_and_defaulted(reg: Registry) -> None:
    spec = validate_components(full_spec(), reg)
    assert spec.components.attention.options == {"window": 4, "dropout": 0.0}
    assert spec.components.head.options == {"num_labels": 3, "dropout": None}  # type: ignore[union-attr]


def test_option_errors_point_at_the_option(reg: Registry) -> None:
    data = {"components": {"attention": {"name": "windowed", "options": {"window": 0}}}}
    with pytest.raises(SpecError, match="components.attention.options.window: Input should be greater than 0"):
        validate_components(ModelSpec.from_data(data), reg)
    data = {"components": {"attention": {"name": "windowed", "options": {"widow": 3}}}}
    with pytest.raises(SpecError, match="components.attention.options.widow: Extra inputs are not permitted"):
        validate_components(ModelSpec.from_data(data), reg)
    data = {"components": {"attention": {"name": "lenient", "options": {"scael": 3}}}}
    with pytest.raises(SpecError, match="components.attention.options.scael: test:lenient has no option 'scael'"):
        validate_components(ModelSpec.from_data(data), reg)
    data = {"components": {"head": {"name": "plain", "options": {"num_labels": 3}}}}
    with pytest.raises(SpecError, match="components.head.options: bertzoo:plain takes no options, got num_labels"):
        validate_components(ModelSpec.from_data(data), reg)
    data = {"components": {"attention": {"name": "auto", "options": {"window": 3}}}}
    with pytest.raises(SpecError, match="attention 'auto' takes no options"):
        validate_components(ModelSpec.from_data(data), reg)


def test_unknown_component_names(reg: Registry) -> None:
    with pytest.raises(SpecError, match="components.attention.name: unknown attention 'windowd'; did you mean 'windowed'"):
        validate_components(ModelSpec.from_data({"components": {"attention": "windowd"}}), reg)
    with pytest.raises(SpecError, match="components.pooler.name: unknown pooler 'avg'"):
        validate_components(ModelSpec.from_data({"components": {"pooler": "avg"}}), reg)


# -- overrides --------------------------------------------------------------------------------------
def test_overrides_field_component_path_and_bare_option(reg: Registry) -> None:
    spec = ModelSpec.from_data(TINY)
    out = apply_overrides(spec, {
        "num_hidden_layers": 1,
        "attention": "windowed",
        "head": {"name": "sequence-classification"},
        "components.attention.options.window": 5,
        "num_labels": 7,  # a bare option: only the head takes it
        "pooler": "none",
    }, reg)
    assert out.num_hidden_layers == 1 and out.hidden_size == 32
    assert out.components.attention == ComponentSpec(name="windowed", options={"window": 5})
    assert out.components.head == ComponentSpec(name="sequence-classification", options={"num_labels": 7})
    assert out.components.pooler is None
    assert spec.num_hidden_layers == 2  # the input is not mutated


def test_none_overrides_are_dropped(reg: Registry) -> None:
    spec = ModelSpec.from_data(TINY)
    assert apply_overrides(spec, {"num_hidden_layers": None, "attention": None, "num_labels": None}, reg) == spec


def test_ambiguous_and_unknown_options(reg: Registry) -> None:
    spec = ModelSpec.from_data({**TINY, "components": {"attention": "windowed", "head": "sequence-classification"}})
    with pytest.raises(SpecError, match="ambiguous override 'dropout'.*\\(attention, head\\).*components.attention.options.dropout"):
        apply_overrides(spec, {"dropout": 0.1}, reg)
    with pytest.raises(SpecError, match="unknown override 'num_hidden_layer'.*did you mean 'num_hidden_layers'"):
        apply_overrides(spec, {"num_hidden_layer": 1}, reg)
    with pytest.raises(SpecError, match="unknown override 'window'"):
        apply_overrides(ModelSpec.from_data(TINY), {"window": 3}, reg)  # attention is auto: nobody takes it
    with pytest.raises(SpecError, match="invalid spec with overrides: num_attention_heads: Input should be greater than 0"):
        apply_overrides(spec, {"num_attention_heads": 0}, reg)
    with pytest.raises(SpecError, match="hidden_size.x.*is not a mapping"):
        apply_overrides(spec, {"hidden_size.x": 1}, reg)


# -- HF config.json ------------------------------------------------------------------------------
def test_hf_config_round_trip_with_transformers_as_oracle() -> None:
    from transformers import BertConfig

    spec = ModelSpec.from_data({**TINY, "hidden_act": "gelu_new", "layer_norm_eps": 1e-7, "pad_token_id": 1,
                                "max_position_embeddings": 64, "type_vocab_size": 3, "classifier_dropout": 0.3,
                                "is_decoder": True, "add_cross_attention": True, "use_cache": False,
                                "tie_word_embeddings": False, "hidden_dropout_prob": 0.0,
                                "attention_probs_dropout_prob": 0.05, "initializer_range": 0.01})
    hf = BertConfig(**spec.to_hf_config())
    for key, value in spec.to_hf_config().items():
        assert getattr(hf, key) == value, key
    # HF -> spec: to_dict() carries transformers' own extra keys, which are ignored
    assert ModelSpec.from_hf_config(hf.to_dict()) == spec.model_copy(update={"name": None})
    assert ModelSpec.from_hf_config(BertConfig().to_dict()) == ModelSpec()
    tiny = BertConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=2, intermediate_size=128, vocab_size=500)
    assert ModelSpec.from_hf_config(tiny.to_dict(), name="tiny") == ModelSpec.from_data(
        {"hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 128,
         "vocab_size": 500, "name": "tiny"})
    json.dumps(spec.to_hf_config())  # config.json is plain JSON


def test_hf_config_refuses_relative_positions() -> None:
    with pytest.raises(SpecError, match="position_embedding_type='relative_key'"):
        ModelSpec.from_hf_config({"position_embedding_type": "relative_key"})
    assert ModelSpec.from_hf_config({"position_embedding_type": "absolute"}) == ModelSpec()


def test_yaml_dump_is_plain_and_ordered() -> None:
    data = yaml.safe_load(full_spec().to_yaml())
    assert list(data)[:4] == ["name", "model_type", "vocab_size", "hidden_size"]
    assert data["components"]["pooler"] is None


def test_dotted_option_override_survives_a_component_choice_in_the_same_call() -> None:
    overrides = {"components.head.options.num_labels": 4, "head": "sequence-classification"}
    spec = apply_overrides(ModelSpec(), overrides)
    assert spec.components.head is not None
    assert spec.components.head.name == "sequence-classification"
    assert spec.components.head.options == {"num_labels": 4}
