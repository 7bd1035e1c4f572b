"""A trunk checkpoint with HF's pooler (MiniLM, bert-base) loaded into a head without one.

transformers 4 ignored such keys (``_keys_to_ignore_on_load_unexpected = [r"pooler"]``); the load
report lists them under ``ignored`` and stays clean (logged at info, not as UNEXPECTED), while a
file with foreign trunk keys is still refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import bertzoo
from bertzoo.errors import CheckpointError

transformers = pytest.importorskip("transformers")

TINY = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64)
# BERT's heads and the generic ones: the trunk folder below is a BertModel's
POOLERLESS = [h for h in bertzoo.list_components("head")
              if bertzoo.get_registry().get("head", h).metadata.get("family") in (None, "bert")
              and not getattr(bertzoo.get_registry().get("head", h).load(), "uses_pooler", True)]
POOLER = ["bert.pooler.dense.weight", "bert.pooler.dense.bias"]


@pytest.fixture(scope="module")
def trunk_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A transformers BertModel folder: embeddings, encoder and pooler, as MiniLM ships."""
    folder = tmp_path_factory.mktemp("trunk")
    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig(**TINY)).save_pretrained(folder)
    assert "pooler.dense.weight" in load_file(folder / "model.safetensors")
    return folder


def test_pooler_less_heads_exist() -> None:
    assert {"bertzoo:masked-lm", "bertzoo:token-classification", "bertzoo:question-answering"} <= set(POOLERLESS)


@pytest.mark.parametrize("head", POOLERLESS)
def test_a_pooler_the_head_does_not_use_is_ignored_cleanly(
    head: str, trunk_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = {"is_decoder": True} if head.endswith("causal-lm") else {}
    with caplog.at_level(logging.INFO, logger="bertzoo"):
        model = bertzoo.from_pretrained(trunk_folder, head=head, **cfg)
    report = model.load_report
    assert report.unexpected == [], report.summary()
    assert sorted(report.ignored) == sorted(POOLER)
    assert report.as_dict()["ignored_keys"] == report.ignored
    assert "UNEXPECTED" not in report.summary() and "pooler" in report.summary()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "UNEXPECTED" in r.getMessage()]


def test_a_pooler_the_head_uses_is_loaded(trunk_folder: Path) -> None:
    model = bertzoo.from_pretrained(trunk_folder, head="sequence-classification", num_labels=2)
    assert model.load_report.ignored == [] and model.load_report.unexpected == []
    hf = load_file(trunk_folder / "model.safetensors")
    torch.testing.assert_close(model.bert.pooler.dense.weight, hf["pooler.dense.weight"])


def test_a_full_checkpoint_with_an_unused_pooler_loads_clean_and_logs_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a token-classification checkpoint that kept its trunk's pooler (as some fine-tuning scripts save it)
    torch.manual_seed(0)
    transformers.BertForTokenClassification(transformers.BertConfig(**TINY, num_labels=3)).save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state |= {"bert.pooler.dense.weight": torch.zeros(32, 32), "bert.pooler.dense.bias": torch.zeros(32)}
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with caplog.at_level(logging.INFO, logger="bertzoo"):
        model = bertzoo.from_pretrained(tmp_path, head="token-classification")
    assert model.load_report.clean and sorted(model.load_report.ignored) == sorted(POOLER)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert any("ignored 2 key(s)" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_foreign_trunk_keys_are_still_refused(trunk_folder: Path, tmp_path: Path) -> None:
    folder = tmp_path / "foreign"
    folder.mkdir()
    (folder / "config.json").write_text((trunk_folder / "config.json").read_text())
    state = load_file(trunk_folder / "model.safetensors")
    state["encoder.layer.7.output.dense.weight"] = torch.zeros(32, 37)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match="unexpected bert.encoder.layer.7"):
        bertzoo.from_pretrained(folder, head="masked-lm")
    loose = bertzoo.from_pretrained(folder, head="masked-lm", strict=False)
    assert loose.load_report.unexpected == ["bert.encoder.layer.7.output.dense.weight"]
    assert sorted(loose.load_report.ignored) == sorted(POOLER)
