"""Complete saves: a bertzoo save of an embedding model loads unchanged in sentence-transformers and in
transformers (tokenizer, max length, prompts, pooling, normalisation), carries a model card, is atomic
over an existing folder, and uploads through huggingface_hub to a hub server (a loopback one here).

Everything runs on tiny random models (hidden 32, 2 layers) built once per module.
"""

from __future__ import annotations

import base64
import json
import shutil
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import bertzoo
from bertzoo.checkpoint.model_card import CARD_MARKER, record_verification
from bertzoo.checkpoint.push import push_to_hub
from bertzoo.checkpoint.sentence_transformers import read_sentence_transformers_info
from bertzoo.inference.tokenizer import Tokenizer

st = pytest.importorskip("sentence_transformers", reason="the loader the saves must satisfy (dev extra)")
transformers = pytest.importorskip("transformers", reason="the loader the saves must satisfy (dev extra)")

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Embeddings map text to vectors.", "short",
         "A somewhat longer sentence, with punctuation; and words that split into word pieces: tokenization."]
PROMPTS = {"query": "query: ", "document": "passage: "}
TINY = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 37, "max_position_embeddings": 32}


@pytest.fixture(scope="module")
def st_source(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    """A sentence-transformers folder around the tiny BERT: mean pooling, Normalize, max length 24,
    e5-style prompts with ``query`` as the default."""
    folder = tmp_path_factory.mktemp("st-source") / "tiny-st"
    shutil.copytree(tiny_bert, folder)
    modules = [{"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
               for i, (kind, path) in enumerate([("Transformer", ""), ("Pooling", "1_Pooling"),
                                                 ("Normalize", "2_Normalize")])]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32,
                                                                   "pooling_mode_mean_tokens": True}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 24, "do_lower_case": False}))
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": PROMPTS, "default_prompt_name": "query", "similarity_fn_name": "cosine"}))
    return folder


@pytest.fixture(scope="module")
def saved(st_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ST source loaded in bertzoo and saved again (into a folder of its own)."""
    model = bertzoo.from_pretrained(st_source, head="auto")
    return model.save_pretrained(tmp_path_factory.mktemp("saved") / "tiny-st")


def bertzoo_vectors(folder: Path, texts: list[str]) -> torch.Tensor:
    """bertzoo's embeddings of ``texts`` as they are (no prompt), with bertzoo's own tokenizer."""
    model = bertzoo.from_pretrained(folder, head="auto")
    enc = Tokenizer.from_folder(folder).encode_batch(texts)
    with torch.no_grad():
        return model(**enc.model_inputs()).sentence_embedding


def assert_same(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    diff = float((ours - theirs).abs().max())
    cos = float(F.cosine_similarity(ours, theirs, dim=-1).min())
    print(f"\n[complete save] {what}: max abs diff {diff:.2e}, min cosine {cos:.8f}")
    assert diff <= 1e-5 and cos >= 0.99999


def test_a_save_loads_unchanged_in_sentence_transformers(saved: Path) -> None:
    model = st.SentenceTransformer(str(saved), device="cpu")
    assert model.prompts["query"] == "query: " and model.prompts["document"] == "passage: "
    assert model.default_prompt_name == "query" and model.similarity_fn_name == "cosine"
    assert model.max_seq_length == 24
    unk = model.tokenizer.unk_token_id
    ids = model.tokenize(TEXTS)["input_ids"]
    assert (ids != unk).all(), "sentence-transformers embeds [UNK]s: the tokenizer files are missing"
    theirs = model.encode(TEXTS, convert_to_tensor=True)  # the default prompt "query: " applies
    assert_same(bertzoo_vectors(saved, ["query: " + t for t in TEXTS]), theirs, "sentence-transformers, query prompt")
    plain = model.encode(TEXTS, prompt="", convert_to_tensor=True)
    assert_same(bertzoo_vectors(saved, TEXTS), plain, "sentence-transformers, no prompt")


def test_a_save_loads_unchanged_in_transformers(saved: Path) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(saved)
    model = transformers.AutoModel.from_pretrained(saved).eval()
    enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert enc["input_ids"].tolist() == Tokenizer.from_folder(saved).encode_batch(TEXTS).input_ids.tolist()
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    theirs = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert_same(bertzoo_vectors(saved, TEXTS), theirs, "transformers AutoModel + mean pooling")


def test_save_settings_override_the_source(st_source: Path, tmp_path: Path) -> None:
    model = bertzoo.from_pretrained(st_source, head="auto")
    model.save_pretrained(tmp_path / "m", prompts={"query": "q: "}, default_prompt_name="query", max_seq_length=16)
    loaded = st.SentenceTransformer(str(tmp_path / "m"), device="cpu")
    assert (loaded.prompts["query"], loaded.default_prompt_name, loaded.max_seq_length) == ("q: ", "query", 16)
    info = read_sentence_transformers_info(tmp_path / "m")
    assert info is not None and info.max_seq_length == 16 and info.prompts == {"query": "q: "}
    # what else the source says is carried: include_prompt (INSTRUCTOR-style pooling), truncate_dim
    variant = shutil.copytree(st_source, tmp_path / "variant")
    (variant / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32,
                                                                    "pooling_mode": "mean", "include_prompt": False}))
    config = json.loads((variant / "config_sentence_transformers.json").read_text())
    (variant / "config_sentence_transformers.json").write_text(json.dumps({**config, "truncate_dim": 16}))
    bertzoo.from_pretrained(variant, head="auto").save_pretrained(tmp_path / "v")
    info = read_sentence_transformers_info(tmp_path / "v")
    assert info is not None and (info.include_prompt, info.truncate_dim, info.prompts) == (False, 16, PROMPTS)


def test_saving_over_an_existing_folder_is_atomic(saved: Path, st_source: Path, tmp_path: Path) -> None:
    target = shutil.copytree(saved, tmp_path / "m")
    before = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    model = bertzoo.from_pretrained(st_source, head="auto")
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight.add_(1.0)  # new weights that must not land
    # fails after the weights and the tokenizer were written into the temporary folder
    with pytest.raises(bertzoo.CheckpointError, match="default_prompt_name 'nope'"):
        model.save_pretrained(target, default_prompt_name="nope")
    assert {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary left behind
    model.save_pretrained(target)  # now it lands
    assert not torch.allclose(bertzoo_vectors(target, TEXTS), bertzoo_vectors(saved, TEXTS))


def test_a_built_model_without_a_tokenizer_is_saved_with_a_warning(tiny_bert: Path, tmp_path: Path) -> None:
    model = bertzoo.build(dict(TINY), head="sentence-embedding", normalize=True)
    with pytest.warns(UserWarning, match="without a tokenizer"):
        model.save_pretrained(tmp_path / "bare")
    assert not (tmp_path / "bare" / "tokenizer.json").exists()
    assert "NOT SAVED" in (tmp_path / "bare" / "README.md").read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.save_pretrained(tmp_path / "given", tokenizer=tiny_bert)
        model.save_pretrained(tmp_path / "hf-tok", tokenizer=transformers.AutoTokenizer.from_pretrained(tiny_bert))
        model.save_pretrained(tmp_path / "bz-tok", tokenizer=Tokenizer.from_folder(tiny_bert))
    for name in ("given", "hf-tok", "bz-tok"):
        loaded = st.SentenceTransformer(str(tmp_path / name), device="cpu")
        assert_same(bertzoo_vectors(tmp_path / name, TEXTS), loaded.encode(TEXTS, convert_to_tensor=True),
                    f"built model, tokenizer from {name}")
    with pytest.raises(bertzoo.CheckpointError, match="tokenizer files"):
        model.save_pretrained(tmp_path / "bad", tokenizer=tmp_path / "bare")


def test_the_model_card_carries_the_spec_the_source_and_the_parity(saved: Path, st_source: Path, tiny_bert: Path,
                                                                     tmp_path: Path) -> None:
    from bertzoo.verify import verify

    card = (saved / "README.md").read_text()
    assert CARD_MARKER in card and str(st_source) in card and "| hidden size | 32 |" in card
    assert "library_name: sentence-transformers" in card and "`query`: 'query: '" in card
    assert "Not measured" in card
    # a folder without a default prompt (verify compares the texts as they are)
    folder = bertzoo.from_pretrained(tiny_bert, head="sentence-embedding").save_pretrained(tmp_path / "m")
    report = verify(folder, attentions=["sdpa"], texts=TEXTS, pairs=[])
    assert report.passed, report.failures
    record_verification(folder, report)
    card = (folder / "README.md").read_text()
    assert "**PASS**" in card and "sentence_embedding | sentence-transformers" in card and "Not measured" not in card
    with pytest.raises(bertzoo.CheckpointError, match="not of"):
        record_verification(saved, report)
    # save_pretrained(verify_report=) takes the report (or its dict) too
    bertzoo.from_pretrained(folder, head="auto").save_pretrained(tmp_path / "again", verify_report=report.as_dict())
    assert "**PASS**" in (tmp_path / "again" / "README.md").read_text()
    # a card bertzoo did not write is kept
    (tmp_path / "again" / "README.md").write_text("# my own card\n")
    bertzoo.from_pretrained(folder, head="auto").save_pretrained(tmp_path / "again")
    assert (tmp_path / "again" / "README.md").read_text() == "# my own card\n"


def test_a_sentence_encoder_saves_what_it_encodes(st_source: Path, tmp_path: Path) -> None:
    encoder = bertzoo.SentenceEncoder(str(st_source), prompts={"query": "find: "})
    out = encoder.save_pretrained(tmp_path / "encoder")
    theirs = st.SentenceTransformer(str(out), device="cpu")
    assert (theirs.prompts["query"], theirs.prompts["document"], theirs.default_prompt_name) == (
        "find: ", "passage: ", "query")
    assert theirs.max_seq_length == encoder.max_seq_length == 24
    assert_same(encoder.encode(TEXTS, convert_to_tensor=True), theirs.encode(TEXTS, convert_to_tensor=True),
                "SentenceEncoder.save_pretrained in sentence-transformers (prompt 'find: ')")


# -- push_to_hub against a loopback hub ----------------------------------------------------------------------


class _Hub(BaseHTTPRequestHandler):
    """The hub endpoints ``HfApi.create_repo`` and ``upload_folder`` call: repo creation, README YAML
    validation, preupload (every file "regular", so contents come inline) and the NDJSON commit, which
    writes the files under ``server.store / repo_id``."""

    def log_message(self, *args: Any) -> None:  # keep pytest's output clean
        pass

    def _reply(self, body: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        server: Any = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server.requests.append((self.path, self.headers.get("Authorization")))
        url = f"http://127.0.0.1:{server.server_port}"
        if self.path == "/api/repos/create":
            payload = json.loads(body)
            repo = f"{payload['organization']}/{payload['name']}"
            return self._reply({"url": f"{url}/{repo}", "name": repo, "id": repo})
        if self.path == "/api/validate-yaml":
            return self._reply({"errors": [], "warnings": []})
        if "/preupload/" in self.path:
            files = json.loads(body)["files"]
            return self._reply({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                          for f in files]})
        if "/commit/" in self.path:
            repo = self.path.removeprefix("/api/models/").split("/commit/")[0]
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "header":
                    server.messages.append(item["value"]["summary"])
                elif item["key"] == "file":
                    path = server.store / repo / item["value"]["path"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(base64.b64decode(item["value"]["content"]))
            return self._reply({"commitUrl": f"{url}/{repo}/commit/{'0' * 40}", "commitOid": "0" * 40})
        return self._reply({"error": f"no such endpoint {self.path}"}, 404)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite may run offline; this server is local
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    server.store, server.requests, server.messages = tmp_path / "hub", [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_push_to_hub_uploads_a_complete_save(hub: Any, st_source: Path, saved: Path) -> None:
    endpoint = f"http://127.0.0.1:{hub.server_port}"
    model = bertzoo.from_pretrained(st_source, head="auto")
    info = model.push_to_hub("me/tiny-st", endpoint=endpoint, token="test-token", commit_message="tiny upload")
    assert info.oid == "0" * 40 and hub.messages == ["tiny upload"]
    assert {auth for _, auth in hub.requests} == {"Bearer test-token"}
    pushed = hub.store / "me" / "tiny-st"
    names = sorted(str(p.relative_to(pushed)) for p in pushed.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(saved)) for p in saved.rglob("*") if p.is_file())
    for name in ("model.safetensors", "tokenizer.json", "modules.json", "sentence_bert_config.json"):
        assert (pushed / name).read_bytes() == (saved / name).read_bytes()
    loaded = st.SentenceTransformer(str(pushed), device="cpu")
    assert_same(bertzoo_vectors(saved, TEXTS), loaded.encode(TEXTS, prompt="", convert_to_tensor=True),
                "pushed folder in sentence-transformers")
    push_to_hub(saved, "me/again", endpoint=endpoint, token="test-token")  # a saved folder, as it is
    assert (hub.store / "me" / "again" / "README.md").read_bytes() == (saved / "README.md").read_bytes()
