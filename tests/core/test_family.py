"""The family record: key mapping both ways, layer sharing schedule, head resolution, defaults."""

from __future__ import annotations

import pytest

import bertzoo
from bertzoo.discovery import get_registry
from bertzoo.errors import SpecError
from bertzoo.family import BERT_FAMILY, Family, get_family, head_for_family
from bertzoo.registry import Registry
from bertzoo.spec import ModelSpec

GROUPED = Family(model_type="grouped", description="test", base_prefix="grouped", trunk_architecture="GroupedModel",
                 key_renames=(("transformer.", "encoder."), ("embeddings_project.", "embeddings.project.")),
                 grouped_layers=True)


@pytest.mark.parametrize(("file", "internal"), [
    ("transformer.layer.3.ffn.lin1.weight", "encoder.layer.3.ffn.lin1.weight"),
    ("embeddings_project.weight", "embeddings.project.weight"),
    ("encoder.albert_layer_groups.1.albert_layers.1.ffn.weight", "encoder.layer.3.ffn.weight"),
    ("embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight"),
])
def test_trunk_keys_map_both_ways(file: str, internal: str) -> None:
    assert GROUPED.trunk_key_from_file(file, inner_group_num=2) == internal
    back = GROUPED.trunk_key_to_file(internal, inner_group_num=2)
    assert GROUPED.trunk_key_from_file(back, inner_group_num=2) == internal


def test_albert_schedule_is_transformers_call_order() -> None:
    # families.md: L=3, G=2, inner=2 calls (0,0),(0,1),(0,0),(0,1),(1,0),(1,1)
    spec = ModelSpec(hidden_size=8, num_attention_heads=2, num_hidden_layers=3, num_hidden_groups=2, inner_group_num=2)
    assert spec.layer_schedule == (0, 1, 0, 1, 2, 3) and spec.num_layer_modules == 4
    assert ModelSpec(num_hidden_layers=3).layer_schedule == (0, 1, 2)
    with pytest.raises(ValueError, match="num_hidden_groups"):
        ModelSpec(num_hidden_layers=2, num_hidden_groups=3)


def test_shared_layers_run_in_schedule_order() -> None:
    model = bertzoo.build({"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 20, "vocab_size": 50,
                           "num_hidden_layers": 3, "num_hidden_groups": 1, "max_position_embeddings": 32})
    assert len(model.encoder.layer) == 1 and model.encoder.depth == 3
    out = model(input_ids=model.embeddings.word_embeddings.weight.new_ones(2, 5).long(), output_hidden_states=True)
    assert len(out.hidden_states) == 4
    assert sum(p.numel() for p in model.parameters()) == model.num_parameters()


def test_bert_is_the_default_family_even_in_an_empty_registry() -> None:
    assert get_family("bert", Registry()) is BERT_FAMILY
    with pytest.raises(SpecError, match="model_type 'funnel' is not a registered family"):
        get_family("funnel", get_registry())


def test_heads_resolve_per_family() -> None:
    reg = get_registry()
    assert head_for_family("sequence-classification", "bert", reg) == "sequence-classification"
    assert head_for_family("sentence-embedding", "bert", reg) == "sentence-embedding"
    other = Registry()
    for record in reg.records():
        other.add(record)
    other.register("family", "funnel", Family("funnel", "test", "funnel", "FunnelModel"), plugin="tests")
    # a generic head serves any family; BERT's heads are refused for another family's trunk
    assert head_for_family("sentence-embedding", "funnel", other) == "sentence-embedding"
    with pytest.raises(SpecError, match="the funnel family has no 'masked-lm' head"):
        head_for_family("masked-lm", "funnel", other)
    other.register("head", "funnel.masked-lm", reg.get("head", "masked-lm").target, plugin="tests", family="funnel")
    assert head_for_family("masked-lm", "funnel", other) == "tests:funnel.masked-lm"
