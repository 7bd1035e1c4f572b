"""ELECTRA against transformers 5: every head (discriminator, generator, classifiers), every attention,
E ≠ H (``embeddings_project``) and E = H, save round trip, and the main job on tiny folders.

Tiny random configs (hidden 32, embedding 16, 2 layers, 4 heads, intermediate 37, 64 positions),
perturbed weights, dropout off, right-padded inputs with 0/1 token types. Diffs are printed
(``pytest -s``); the shared checks live in tests/families/parity.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import bertzoo

transformers = pytest.importorskip("transformers", reason="the oracle (dev extra)")
from parity import (  # noqa: E402
    ATOL,
    TINY,
    FamilyCase,
    check_head,
    head_attention_cases,
    hf_folder,
    max_diff,
    one_torch_thread,  # noqa: F401  (autouse fixture: one torch thread per module)
    record,
    reference_answer,
    st_folder,
    wordpiece_tokenizer,
)

from bertzoo.inference.tokenizer import Tokenizer  # noqa: E402

HEADS = ("trunk", "pretraining", "masked-lm", "causal-lm", "sequence-classification", "multiple-choice",
         "token-classification", "question-answering")
RENAMES = (("embeddings_project.", "embeddings.embeddings_project."),)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> object:
    return wordpiece_tokenizer(tmp_path_factory.mktemp("electra-vocab"))


def electra_case(vocab_size: int, embedding_size: int) -> FamilyCase:
    return FamilyCase(family="electra", hf_prefix="Electra", base_prefix="electra", renames=RENAMES, heads=HEADS,
                      config={**TINY, "vocab_size": vocab_size, "embedding_size": embedding_size})


@pytest.fixture(scope="module")
def case(tokenizer: object) -> FamilyCase:
    return electra_case(len(tokenizer), 16)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, case: FamilyCase, tokenizer: object) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("electra")
    return {head: hf_folder(case, head, root / head, tokenizer) for head in HEADS}


@pytest.mark.parametrize(("head", "attention"), head_attention_cases(HEADS))
def test_head_matches_transformers_and_saves_for_it(case: FamilyCase, folders: dict[str, Path], tmp_path: Path,
                                                    head: str, attention: str) -> None:
    """Outputs, loss, gradients; then save_pretrained → transformers loads it (auto attention only)."""
    check_head(case, folders[head], head, attention, tmp_path / "saved" if attention == "auto" else None)


@pytest.mark.parametrize("head", ["trunk", "masked-lm"])
def test_embedding_size_equal_to_hidden_has_no_projection(case: FamilyCase, tmp_path: Path, head: str) -> None:
    wide = electra_case(case.vocab_size, TINY["hidden_size"])
    folder = hf_folder(wide, head, tmp_path / "wide")
    check_head(wide, folder, head, "auto", tmp_path / "saved")
    ours = bertzoo.from_pretrained(folder, head="auto")
    assert not any("embeddings_project" in k for k in ours.state_dict())


def test_untied_generator_matches_transformers(case: FamilyCase, tmp_path: Path) -> None:
    folder = hf_folder(case, "masked-lm", tmp_path / "untied", tie_word_embeddings=False)
    check_head(case, folder, "masked-lm", "auto", tmp_path / "saved")


def test_generator_bias_is_saved_and_weight_tied(case: FamilyCase, folders: dict[str, Path], tmp_path: Path) -> None:
    ours = bertzoo.from_pretrained(folders["masked-lm"], head="auto")
    assert ours.generator_lm_head.weight is ours.bert.embeddings.word_embeddings.weight
    ours.save_pretrained(tmp_path)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "generator_lm_head.bias" in keys and "generator_lm_head.weight" not in keys
    assert "electra.embeddings_project.weight" in keys


def test_packed_calls_agree(case: FamilyCase, folders: dict[str, Path]) -> None:
    hf = transformers.AutoModel.from_pretrained(folders["trunk"], attn_implementation="eager").eval()
    ours = bertzoo.from_pretrained(folders["trunk"]).eval()
    x = case.inputs("trunk")
    keep = x["attention_mask"].bool()
    with torch.no_grad():
        want = hf(**x).last_hidden_state[keep]
        cu = torch.nn.functional.pad(x["attention_mask"].sum(1).cumsum(0), (1, 0)).int()
        got = ours.forward_packed(x["input_ids"][keep], cu, token_type_ids=x["token_type_ids"][keep])
    assert record("electra", "trunk", "forward_packed", max_diff(got, want)) <= ATOL


# -- tokenizer and main job ------------------------------------------------------------------------------
SENTENCES = ["The quick brown fox jumps over the lazy dog.", "Paris is the capital of France.",
             "Tokenizers split text into pieces!", "ok", "A naïve café résumé in Zürich, 1234 times a day."]


def test_tokenizer_equals_transformers_with_token_types(folders: dict[str, Path]) -> None:
    hf = transformers.AutoTokenizer.from_pretrained(folders["trunk"])
    ours = Tokenizer.from_folder(folders["trunk"])
    pairs = [("What is it?", "A test."), ("Who?", "Paris is the capital of France.")]
    want = hf([p[0] for p in pairs], [p[1] for p in pairs], padding=True, return_offsets_mapping=True,
              return_tensors="pt")
    got = ours.encode_batch(pairs, return_offsets=True)
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(got.model_inputs()[name], want[name]), name
    assert torch.equal(got.offsets, want["offset_mapping"])


def test_embed_equals_sentence_transformers(folders: dict[str, Path], tmp_path: Path) -> None:
    st = pytest.importorskip("sentence_transformers")
    folder = st_folder(folders["trunk"], tmp_path / "st")
    want = st.SentenceTransformer(str(folder), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    got = torch.from_numpy(bertzoo.embed(SENTENCES, model=folder))
    cos = torch.nn.functional.cosine_similarity(got, want.cpu(), dim=1)
    assert float(cos.min()) >= 0.99999, cos


def test_tasks_equal_transformers(case: FamilyCase, tokenizer: object, tmp_path: Path) -> None:
    folder = hf_folder(case, "sequence-classification", tmp_path / "cls", tokenizer, scale=1.0)
    hf = transformers.pipeline("text-classification", model=str(folder), device="cpu", top_k=None)
    pairs = [{"text": "Who?", "text_pair": s} for s in SENTENCES]
    for ours, theirs in zip(bertzoo.classify(pairs, model=folder, top_k=None), hf(pairs), strict=True):
        assert [r["label"] for r in ours] == [r["label"] for r in theirs]
        np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=1e-5)

    folder = hf_folder(case, "masked-lm", tmp_path / "mlm", tokenizer, scale=1.0)
    texts = ["paris is the [MASK] of france.", "the quick [MASK] fox."]
    theirs = transformers.pipeline("fill-mask", model=str(folder), device="cpu", top_k=3)(texts)
    for a, b in zip(bertzoo.fill_mask(texts, model=folder, top_k=3), theirs, strict=True):
        assert [r["token"] for r in a] == [r["token"] for r in b]
        np.testing.assert_allclose([r["score"] for r in a], [r["score"] for r in b], atol=1e-5)

    folder = hf_folder(case, "question-answering", tmp_path / "qa", tokenizer, scale=1.0)
    question, context = "What is the capital of France?", "Paris is the capital of France, and Berlin of Germany."
    theirs = reference_answer(folder, question, context)
    ours = bertzoo.answer(question, context, model=folder)
    assert (ours["start"], ours["end"], ours["answer"]) == (theirs["start"], theirs["end"], theirs["answer"])
    assert ours["score"] == pytest.approx(theirs["score"], abs=1e-5)
