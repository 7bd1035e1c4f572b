"""RoBERTa and XLM-RoBERTa against transformers 5: every head, every attention, save round trip, the
tokenizers (byte-level BPE, SentencePiece Unigram) and the main job on tiny folders.

Tiny random configs (hidden 32, 2 layers, 4 heads, intermediate 37, 64 positions), perturbed
weights, dropout off, right-padded inputs (pad id 1, as RoBERTa). Diffs are printed
(``pytest -s``); the shared checks live in tests/families/parity.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import bertzoo

transformers = pytest.importorskip("transformers", reason="the oracle (dev extra)")
from parity import (  # noqa: E402
    ATOL,
    TINY,
    FamilyCase,
    byte_bpe_tokenizer,
    check_head,
    head_attention_cases,
    hf_folder,
    max_diff,
    one_torch_thread,  # noqa: F401  (autouse fixture: one torch thread per module)
    record,
    reference_answer,
    st_folder,
    unigram_tokenizer,
)

from bertzoo.errors import CheckpointError, InputError  # noqa: E402
from bertzoo.inference.tokenizer import Tokenizer  # noqa: E402

HEADS = ("trunk", "masked-lm", "causal-lm", "sequence-classification", "multiple-choice",
         "token-classification", "question-answering")
FAMILIES = {"roberta": ("Roberta", byte_bpe_tokenizer), "xlm-roberta": ("XLMRoberta", unigram_tokenizer)}


@pytest.fixture(scope="module")
def tokenizers_() -> dict[str, Any]:
    return {family: make() for family, (_prefix, make) in FAMILIES.items()}


@pytest.fixture(scope="module")
def cases(tokenizers_: dict[str, Any]) -> dict[str, FamilyCase]:
    return {
        family: FamilyCase(
            family=family, hf_prefix=prefix, base_prefix="roberta", token_types=False, heads=HEADS,
            config={**TINY, "vocab_size": len(tokenizers_[family]), "pad_token_id": 1, "bos_token_id": 0,
                    "eos_token_id": 2, "type_vocab_size": 1, "layer_norm_eps": 1e-5},
        )
        for family, (prefix, _make) in FAMILIES.items()
    }


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, cases: dict[str, FamilyCase],
            tokenizers_: dict[str, Any]) -> dict[tuple[str, str], Path]:
    """One saved transformers folder (with its tokenizer) per family × head."""
    root = tmp_path_factory.mktemp("roberta-family")
    return {(family, head): hf_folder(case, head, root / f"{family}-{head}", tokenizers_[family])
            for family, case in cases.items() for head in HEADS}


# XLM-R runs RoBERTa's code (its registration differs): the attention sweep once, on RoBERTa
CASES = [(f, h, a) for f in FAMILIES for h, a in head_attention_cases(HEADS, () if f == "xlm-roberta" else None)]


@pytest.mark.parametrize(("family", "head", "attention"), CASES)
def test_head_matches_transformers_and_saves_for_it(cases: dict[str, FamilyCase], tmp_path: Path,
                                                    folders: dict[tuple[str, str], Path], family: str, head: str,
                                                    attention: str) -> None:
    """Outputs, loss, gradients; then save_pretrained → transformers loads it (auto attention only)."""
    save_to = tmp_path / "saved" if attention == "auto" else None
    check_head(cases[family], folders[family, head], head, attention, save_to)


def test_untied_decoder_matches_transformers(cases: dict[str, FamilyCase], tmp_path: Path) -> None:
    """tie_word_embeddings=False: the decoder weight and bias are the head's own (saved) parameters."""
    case = cases["roberta"]
    folder = hf_folder(case, "masked-lm", tmp_path / "untied", tie_word_embeddings=False)
    check_head(case, folder, "masked-lm", "auto", tmp_path / "saved")


@pytest.mark.parametrize("family", FAMILIES)
def test_positions_ignore_left_padding_and_packed_calls_agree(
        cases: dict[str, FamilyCase], folders: dict[tuple[str, str], Path], family: str) -> None:
    case, folder = cases[family], folders[family, "trunk"]
    hf = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    ours = bertzoo.from_pretrained(folder).eval()
    right = case.inputs("trunk")
    shifts = right["attention_mask"].shape[1] - right["attention_mask"].sum(1)
    left = {k: torch.stack([row.roll(int(n)) for row, n in zip(v, shifts, strict=True)]) for k, v in right.items()}
    with torch.no_grad():
        want = hf(**right).last_hidden_state[right["attention_mask"].bool()]  # (T, H)
        got_left = ours(**left).last_hidden_state[left["attention_mask"].bool()]
        assert ours.last_call_packed
        lengths = right["attention_mask"].sum(1)
        cu = torch.nn.functional.pad(lengths.cumsum(0), (1, 0)).int()
        got_packed = ours.forward_packed(right["input_ids"][right["attention_mask"].bool()], cu)
    assert record(family, "trunk", "left padding", max_diff(got_left, want)) <= ATOL
    assert record(family, "trunk", "forward_packed", max_diff(got_packed, want)) <= ATOL


def test_too_long_input_is_a_clear_error(folders: dict[tuple[str, str], Path]) -> None:
    ours = bertzoo.from_pretrained(folders["roberta", "trunk"])
    ids = torch.full((1, 63), 5)  # 64 positions, offset 2: at most 62 tokens
    with pytest.raises(InputError, match="at most 62 tokens"):
        ours(input_ids=ids)
    assert Tokenizer.from_folder(folders["roberta", "trunk"]).max_length == 62


TEXTS = ["Hello world", " Hello  world!", "A naïve café in 東京, déjà vu.", "Paris is the capital of France."]
PAIRS = [("What is the answer?", "The answer is forty-two."), ("Who?", "Paris is the capital of France.")]


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_equals_transformers(folders: dict[tuple[str, str], Path], family: str) -> None:
    folder = folders[family, "trunk"]
    hf = transformers.AutoTokenizer.from_pretrained(folder)
    ours = Tokenizer.from_folder(folder)
    for items in (TEXTS, PAIRS):
        firsts = [t if isinstance(t, str) else t[0] for t in items]
        seconds = None if isinstance(items[0], str) else [t[1] for t in items]
        want = hf(firsts, seconds, padding=True, return_offsets_mapping=True, return_tensors="pt")
        got = ours.encode_batch(items, return_offsets=True)
        assert torch.equal(got.input_ids, want["input_ids"])
        assert torch.equal(got.attention_mask, want["attention_mask"])
        assert torch.equal(got.offsets, want["offset_mapping"])
        assert "token_type_ids" not in want and "token_type_ids" not in got.model_inputs()
    assert ours.pad_id == hf.pad_token_id == 1 and ours.mask_id == hf.mask_token_id


def test_byte_level_bpe_from_vocab_and_merges(folders: dict[tuple[str, str], Path], tmp_path: Path) -> None:
    folder = folders["roberta", "trunk"]
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    (tmp_path / "vocab.json").write_text(json.dumps(data["model"]["vocab"]), encoding="utf-8")
    merges = [" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]]
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    for name in ("config.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    hf = transformers.AutoTokenizer.from_pretrained(folder)
    ours = Tokenizer.from_folder(tmp_path)
    assert ours.source.endswith("vocab.json")
    want = hf([p[0] for p in PAIRS], [p[1] for p in PAIRS], padding=True, return_offsets_mapping=True,
              return_tensors="pt")
    got = ours.encode_batch(PAIRS, return_offsets=True)
    assert torch.equal(got.input_ids, want["input_ids"]) and torch.equal(got.offsets, want["offset_mapping"])


def test_sentencepiece_only_folder_says_how_to_write_tokenizer_json(tmp_path: Path) -> None:
    (tmp_path / "sentencepiece.bpe.model").write_bytes(b"\0")
    with pytest.raises(CheckpointError, match=r"no tokenizer.json.*save_pretrained"):
        Tokenizer.from_folder(tmp_path)


# -- the main job ------------------------------------------------------------------------------------
SENTENCES = ["The quick brown fox jumps over the lazy dog.", "Paris is the capital of France.",
             "Tokenizers split text into pieces!", "ok", "A naïve café résumé in Zürich, 1234 times a day."]


@pytest.mark.parametrize("family", FAMILIES)
def test_embed_equals_sentence_transformers(folders: dict[tuple[str, str], Path], tmp_path: Path,
                                            family: str) -> None:
    st = pytest.importorskip("sentence_transformers")
    folder = st_folder(folders[family, "trunk"], tmp_path / "st")
    want = st.SentenceTransformer(str(folder), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    got = torch.from_numpy(bertzoo.embed(SENTENCES, model=folder))
    cos = torch.nn.functional.cosine_similarity(got, want.cpu(), dim=1)
    assert float(cos.min()) >= 0.99999, cos


LONG = {"max_position_embeddings": 130}  # pairs of sentences fit (the tiny vocabularies cut words finely)


@pytest.fixture(scope="module")
def task_folders(tmp_path_factory: pytest.TempPathFactory, cases: dict[str, FamilyCase],
                 tokenizers_: dict[str, Any]) -> dict[tuple[str, str], Path]:
    """Folders with spread-out weights (so labels and rankings are not ties) per family × task."""
    root = tmp_path_factory.mktemp("roberta-tasks")
    labels = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
    made = {}
    for family, case in cases.items():
        tok = tokenizers_[family]
        made[family, "classify"] = hf_folder(case, "sequence-classification", root / f"{family}-cls", tok, scale=1.0, **LONG)
        made[family, "rerank"] = hf_folder(case, "sequence-classification", root / f"{family}-ce", tok, scale=1.0, **LONG,
                                           num_labels=1)
        made[family, "fill-mask"] = hf_folder(case, "masked-lm", root / f"{family}-mlm", tok, scale=1.0, **LONG)
        made[family, "token-classify"] = hf_folder(case, "token-classification", root / f"{family}-ner", tok,
                                                   scale=2.0, **LONG, id2label=labels,
                                                   label2id={v: k for k, v in labels.items()})
        made[family, "answer"] = hf_folder(case, "question-answering", root / f"{family}-qa", tok, scale=1.0, **LONG)
    return made


@pytest.mark.parametrize("family", FAMILIES)
def test_classify_and_rerank_equal_transformers(task_folders: dict[tuple[str, str], Path], family: str) -> None:
    folder = task_folders[family, "classify"]
    hf = transformers.pipeline("text-classification", model=str(folder), device="cpu", top_k=None)
    for ours, theirs in zip(bertzoo.classify(SENTENCES, model=folder, top_k=None), hf(SENTENCES), strict=True):
        assert [r["label"] for r in ours] == [r["label"] for r in theirs]
        np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=1e-5)
    st = pytest.importorskip("sentence_transformers")
    ce = task_folders[family, "rerank"]
    ranked = st.CrossEncoder(str(ce), device="cpu").rank(SENTENCES[1], SENTENCES)
    ours_ranked = bertzoo.rerank(SENTENCES[1], SENTENCES, model=ce)
    assert [r["index"] for r in ours_ranked] == [r["corpus_id"] for r in ranked]
    np.testing.assert_allclose([r["score"] for r in ours_ranked], [r["score"] for r in ranked], atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_fill_mask_token_classify_and_answer_equal_transformers(task_folders: dict[tuple[str, str], Path],
                                                                family: str) -> None:
    folder = task_folders[family, "fill-mask"]
    texts = ["Paris is the <mask> of France.", "The quick <mask> fox."]
    theirs = transformers.pipeline("fill-mask", model=str(folder), device="cpu", top_k=3)(texts)
    ours = bertzoo.fill_mask(texts, model=folder, top_k=3)
    for a, b in zip(ours, theirs, strict=True):
        assert [r["token"] for r in a] == [r["token"] for r in b]
        np.testing.assert_allclose([r["score"] for r in a], [r["score"] for r in b], atol=1e-5)

    folder = task_folders[family, "token-classify"]
    theirs = transformers.pipeline("token-classification", model=str(folder), device="cpu",
                                   aggregation_strategy="none")(SENTENCES)
    ours = bertzoo.token_classify(SENTENCES, model=folder, aggregation="none")
    assert sum(len(t) for t in theirs) >= 1  # the oracle found entities (how many depends on float rounding of a random model)
    for a, b in zip(ours, theirs, strict=True):
        assert [(e["entity"], e["index"], e["start"], e["end"]) for e in a] == [
            (e["entity"], e["index"], e["start"], e["end"]) for e in b]
        np.testing.assert_allclose([e["score"] for e in a], [float(e["score"]) for e in b], atol=1e-5)

    folder = task_folders[family, "answer"]
    question, context = "What is the capital of France?", "Paris is the capital of France, and Berlin of Germany."
    theirs = reference_answer(folder, question, context)
    ours = bertzoo.answer(question, context, model=folder)
    assert (ours["start"], ours["end"], ours["answer"]) == (theirs["start"], theirs["end"], theirs["answer"])
    assert ours["score"] == pytest.approx(theirs["score"], abs=1e-5)
