"""Bad input to the heads gives a BertzooError that names the argument, the cause and the fix.

Also the ``num_labels`` decision for checkpoints (timm's rule, DESIGN.md): an explicit
``num_labels`` that differs from the checkpoint re-initialises the head's ``classifier_keys``
and reports them; a checkpoint whose named labels would be lost, or whose config and weights
disagree, is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import bertzoo

transformers = pytest.importorskip("transformers")

TINY: dict[str, Any] = dict(
    vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=37, max_position_embeddings=64,
)
B, S = 2, 6


def ids(*shape: int) -> torch.Tensor:
    return torch.randint(1, 100, shape or (B, S), generator=torch.Generator().manual_seed(0))


def build(head: str, **options: Any) -> Any:
    return bertzoo.build(dict(TINY), head=head, **options).eval()


# -- labels ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "labels", "match"),
    [
        ({"problem_type": "single_label_classification"}, torch.tensor([0.0, 1.0]), "integer class indices"),
        ({"num_labels": 3}, torch.tensor([[0, 1], [1, 2]]), r"shape \(2, 2\)"),
        ({"problem_type": "multi_label_classification"}, torch.tensor([[0, 1], [1, 0]]), "floating point"),
        ({"num_labels": 1}, torch.tensor([1, 0]), "floating point for regression"),
        ({"num_labels": 2}, torch.tensor([0.0, 1.0]), "multi-label"),  # float (B,) → inferred multi-label
        ({"num_labels": 3, "problem_type": "regression"}, torch.randn(B), r"needs \(2, 3\)"),
        ({}, [0, 1], "torch.Tensor"),
    ],
    ids=["single-float", "single-shape", "multi-int", "regression-int", "inferred-multi-shape",
         "regression-shape", "list"],
)
def test_sequence_classification_labels(options: dict[str, Any], labels: Any, match: str) -> None:
    with pytest.raises(bertzoo.InputError, match=match):
        build("sequence-classification", **options)(ids(), labels=labels)


@pytest.mark.parametrize(
    ("head", "kwargs", "match"),
    [
        ("token-classification", {"labels": torch.zeros(B, S + 1, dtype=torch.long)}, r"shape \(2, 7\)"),
        ("masked-lm", {"labels": torch.zeros(B, S)}, "integer"),
        ("causal-lm", {"labels": torch.zeros(B, S, dtype=torch.long), "logits_to_keep": 1}, "logits_to_keep"),
        ("next-sentence", {"labels": torch.zeros(B, 2, dtype=torch.long)}, "next-sentence"),
        ("pretraining", {"labels": torch.zeros(B, S, dtype=torch.long),
                         "next_sentence_label": torch.zeros(B, S, dtype=torch.long)}, "next_sentence_label"),
        ("question-answering", {"start_positions": torch.zeros(B), "end_positions": torch.zeros(B)}, "start_positions"),
        ("question-answering", {"start_positions": torch.zeros(B + 1, dtype=torch.long),
                                "end_positions": torch.zeros(B, dtype=torch.long)}, "start_positions"),
    ],
    ids=["token-shape", "mlm-float", "clm-logits-to-keep", "nsp-shape", "pretraining-nsp-shape", "qa-float",
         "qa-shape"],
)
def test_label_errors_name_the_argument(head: str, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(bertzoo.InputError, match=match):
        build(head)(ids(), **kwargs)


def test_int32_class_labels_are_accepted() -> None:
    # HF infers single-label for int32 and then fails inside cross_entropy; bertzoo widens them
    model = build("sequence-classification", num_labels=3)
    labels = torch.tensor([2, 0])
    a = model(ids(), labels=labels.int()).loss
    assert torch.equal(a, model(ids(), labels=labels).loss)


# -- multiple choice ------------------------------------------------------------------------------
def test_multiple_choice_needs_batch_choices_seq() -> None:
    model = build("multiple-choice")
    with pytest.raises(bertzoo.InputError, match=r"\(batch, choices, seq\)"):
        model(ids())
    with pytest.raises(bertzoo.InputError, match="same number of choices"):
        model(ids(B, 3, S), attention_mask=torch.ones(B, 2, S, dtype=torch.long))
    with pytest.raises(bertzoo.InputError, match="labels"):
        model(ids(B, 3, S), labels=torch.zeros(B, 3, dtype=torch.long))


def test_multiple_choice_ragged_choice_counts_are_refused() -> None:
    model = build("multiple-choice")
    ragged = torch.nested.nested_tensor([ids(2, S), ids(3, S)], layout=torch.jagged)  # 2 choices, then 3
    with pytest.raises(bertzoo.InputError, match="ragged"):
        model(ragged)
    with pytest.raises(bertzoo.InputError, match="same number of choices"):
        model([[[1, 2, 3]], [[1, 2, 3], [4, 5, 6]]])


# -- options ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("head", "options", "match"),
    [
        ("question-answering", {"num_labels": 3}, "num_labels must be 2"),
        ("sequence-classification", {"num_labels": 1, "problem_type": "single_label_classification"}, "num_labels >= 2"),
        ("sequence-classification", {"problem_type": "ordinal"}, "problem_type"),
        ("sequence-classification", {"num_labels": 3, "id2label": {0: "a", 1: "b"}}, "id2label"),
        ("token-classification", {"id2label": {1: "a", 2: "b"}}, "0..n-1"),
    ],
    ids=["qa-3", "single-label-1", "unknown-problem", "labels-disagree", "label-ids"],
)
def test_invalid_head_options_are_spec_errors(head: str, options: dict[str, Any], match: str) -> None:
    with pytest.raises(bertzoo.SpecError, match=match):
        bertzoo.build(dict(TINY), head=head, **options)


def test_a_head_without_options_refuses_num_labels() -> None:
    with pytest.raises(bertzoo.SpecError, match="num_labels"):
        bertzoo.build(dict(TINY), head="multiple-choice", num_labels=3)


# -- num_labels against a checkpoint ----------------------------------------------------------------
def _save_hf_classifier(folder: Path, **config: Any) -> None:
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(transformers.BertConfig(**TINY, **config))
    model.save_pretrained(folder)


def test_explicit_num_labels_reinitialises_the_classifier_and_reports_it(tmp_path: Path) -> None:
    _save_hf_classifier(tmp_path / "m", num_labels=3)
    model = bertzoo.from_pretrained(tmp_path / "m", head="sequence-classification", num_labels=5)
    assert model.classifier.out_features == 5 and model.num_labels == 5
    assert model.id2label == {i: f"LABEL_{i}" for i in range(5)}
    assert sorted(model.load_report.newly_initialized) == ["classifier.bias", "classifier.weight"]
    assert "bert.pooler.dense.weight" not in model.load_report.newly_initialized


def test_num_labels_that_would_drop_named_labels_is_refused(tmp_path: Path) -> None:
    _save_hf_classifier(tmp_path / "m", id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    with pytest.raises(bertzoo.SpecError, match="pass id2label"):
        bertzoo.from_pretrained(tmp_path / "m", head="sequence-classification", num_labels=3)
    model = bertzoo.from_pretrained(tmp_path / "m", head="sequence-classification",
                                    id2label={0: "neg", 1: "neutral", 2: "pos"})
    assert model.num_labels == 3 and "classifier.weight" in model.load_report.newly_initialized


def test_checkpoint_whose_config_and_classifier_disagree_is_refused(tmp_path: Path) -> None:
    _save_hf_classifier(tmp_path / "m", num_labels=5)
    config_file = tmp_path / "m" / "config.json"
    config = json.loads(config_file.read_text())
    config["id2label"] = {"0": "a", "1": "b", "2": "c"}
    config["label2id"] = {"a": 0, "b": 1, "c": 2}
    config_file.write_text(json.dumps(config))
    with pytest.raises(bertzoo.CheckpointError, match="classifier.weight"):
        bertzoo.from_pretrained(tmp_path / "m", head="sequence-classification")


def test_question_answering_checkpoint_with_three_outputs_is_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    transformers.BertForQuestionAnswering(transformers.BertConfig(**TINY, num_labels=3)).save_pretrained(tmp_path / "qa")
    with pytest.raises(bertzoo.SpecError, match="num_labels must be 2"):
        bertzoo.from_pretrained(tmp_path / "qa", head="auto")
