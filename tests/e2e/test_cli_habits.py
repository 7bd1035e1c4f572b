"""The command line's habits: ``--version``, ``--device``, stdin piped without ``-i -``, ``-o -``, CSV / TSV
input with a header, parquet and compact JSON-lines output, progress counted in tokens, ``--quiet``,
and defaults that cannot be wrong (no random task head on the default embedding model, and a head
whose weights were initialised rather than loaded refused unless ``--allow-random-head``).

A few cases run the real CLI in a subprocess; the rest call :func:`bertzoo.cli.main` in-process
(cheap) on the tiny model of tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import bertzoo
from bertzoo.cli import main, make_parser
from bertzoo.cli._common import default_device
from bertzoo.errors import InputError
from bertzoo.inference.engine import Engine, PipelineOptions

MAIN_JOB = ("embed", "similarity", "classify", "rerank", "fill-mask", "token-classify", "answer")
TEXTS = ["A cat sits on the mat.", "", "Ünïcödé, with a comma", "a much longer text " * 5]


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTZOO_")}
    return subprocess.run([sys.executable, "-m", "bertzoo.cli", *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120, check=False, stdin=None if stdin is not None else subprocess.DEVNULL)


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def _vectors(rows: list[dict[str, object]]) -> np.ndarray:
    return np.array([r["embedding"] for r in rows], dtype=np.float32)


# -- the real CLI, in a subprocess ---------------------------------------------------------------------


def test_version_names_bertzoo_and_torch() -> None:
    proc = _run("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"bertzoo {bertzoo.__version__} (torch {metadata.version('torch')}, Python ")


def test_piped_stdin_and_a_csv_file_to_stdout(tiny_bert: Path, tmp_path: Path) -> None:
    expected = bertzoo.embed(TEXTS, model=tiny_bert)
    # text piped to stdin, no -i -, compact JSON lines on `-o -`: float32 values read back bit for bit
    proc = _run("embed", "--model", str(tiny_bert), "--format", "jsonl", "-o", "-", stdin="\n".join(TEXTS) + "\n")
    assert proc.returncode == 0, proc.stderr
    rows = _lines(proc.stdout)
    assert [set(r) for r in rows] == [{"embedding"}] * len(TEXTS)  # no text echoed
    np.testing.assert_array_equal(_vectors(rows), expected)

    table = tmp_path / "in.csv"
    table.write_text('id,body\n1,"A cat sits on the mat."\n2,""\n3,"Ünïcödé, with a comma"\n4,' + TEXTS[3] + "\n",
                     encoding="utf-8")
    proc = _run("embed", "--model", str(tiny_bert), "--input", str(table), "--field", "body")
    assert proc.returncode == 0, proc.stderr
    rows = _lines(proc.stdout)
    assert [r["text"] for r in rows] == TEXTS
    np.testing.assert_allclose(_vectors(rows), expected, atol=0)


def test_the_default_model_is_refused_for_other_tasks_before_loading() -> None:
    proc = _run("classify", "I love it")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "bertzoo: error: bertzoo classify needs --model PATH, a sequence-classification checkpoint (a model "
        "fine-tuned to label texts): the default model (all-MiniLM-L6-v2) is a sentence-embedding model with no "
        "classify head, so it would answer with random weights (--allow-random-head runs it anyway)"
    ]
    assert "load report" not in proc.stderr and proc.stdout == ""


# -- in-process ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["fill-mask", "token-classify", "rerank", "answer"])
def test_every_task_without_a_model_says_which_model_to_pass(command: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    args = {"rerank": ["the query", "a document"], "answer": ["Who?", "Marie did."]}.get(command, ["Paris is [MASK]."])
    assert main([command, *args]) == 2
    err = capsys.readouterr().err
    kind = {"fill-mask": "a masked-language model", "token-classify": "a token-classification checkpoint",
            "rerank": "a cross-encoder", "answer": "a question-answering checkpoint"}[command]
    assert err.startswith(f"bertzoo: error: bertzoo {command} needs --model PATH, {kind}")
    assert len(err.strip().splitlines()) == 1


def test_python_api_refuses_an_embedding_model_for_another_task_before_loading() -> None:
    from bertzoo.checkpoint.default_model import resolve_model

    with pytest.raises(InputError, match=r"is a sentence-embedding model, with no 'classify' head .* pass a "
                                         r"sequence-classification checkpoint .* allow_random_head=True"):
        Engine(resolve_model(None), task="classify")
    assert PipelineOptions("classify", "m").allow_random_head is False


def test_a_random_head_is_refused_unless_allowed_and_then_named_loudly(tiny_bert: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # tiny_bert is a bare trunk: its classifier would be initialised at random
    assert main(["classify", "I love it", "--model", str(tiny_bert)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bertzoo: error: ") and "has no weights for classifier.weight" in err
    assert "--allow-random-head" in err and "load report" not in err and len(err.strip().splitlines()) == 1

    assert main(["classify", "I love it", "--model", str(tiny_bert), "--allow-random-head"]) == 0
    out, err = capsys.readouterr()
    assert "bertzoo: warning: RANDOM HEAD: classifier.weight, classifier.bias" in err
    assert _lines(out)[0]["text"] == "I love it"

    from bertzoo.inference.pipeline import clear_cache

    clear_cache()  # a fresh load, as every CLI process is (the warning comes with the load)
    assert main(["classify", "I love it", "--model", str(tiny_bert), "--allow-random-head", "--quiet"]) == 0
    out, err = capsys.readouterr()  # --quiet silences everything but this: the results are noise
    assert err.startswith("bertzoo: warning: RANDOM HEAD: ") and len(err.strip().splitlines()) == 1
    assert len(_lines(out)) == 1


def test_parquet_and_compact_output_hold_the_npy_values(tiny_bert: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="parquet output needs pyarrow")
    source = tmp_path / "in.tsv"
    source.write_text("text\tlabel\n" + "".join(f"{t}\tx\n" for t in TEXTS), encoding="utf-8")
    base = ["embed", "--model", str(tiny_bert), "--input", str(source)]
    assert main([*base, "-o", str(tmp_path / "v.npy")]) == 0
    assert main([*base, "-o", str(tmp_path / "v.parquet")]) == 0
    assert main([*base, "-o", str(tmp_path / "v.jsonl"), "--format", "jsonl"]) == 0
    assert "wrote 4 x 32 embeddings to" in capsys.readouterr().err
    npy = np.load(tmp_path / "v.npy")
    table = pq.read_table(tmp_path / "v.parquet")
    assert table.column_names == ["text", "embedding", "tokens", "truncated"]
    assert table["text"].to_pylist() == TEXTS
    np.testing.assert_array_equal(np.array(table["embedding"].to_pylist(), dtype=np.float32), npy)
    np.testing.assert_array_equal(_vectors(_lines((tmp_path / "v.jsonl").read_text(encoding="utf-8"))), npy)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tsv", "v.jsonl", "v.npy", "v.parquet"]  # no temp file

    assert main(["embed", "--model", str(tiny_bert), "x", "-o", str(tmp_path / "v.npy"), "--format", "jsonl"]) == 2
    assert "is npy (by its suffix), not --format jsonl" in capsys.readouterr().err


def test_a_table_without_the_column_names_the_columns_it_has(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.tsv"
    source.write_text("id\tsentence\n1\thello\n", encoding="utf-8")
    assert main(["embed", "--input", str(source)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"bertzoo: error: {source} has no column 'text'; its columns are 'id', 'sentence': "
                           "name the one holding the text with --field")


def test_compact_records_of_other_commands_drop_the_text(tiny_bert: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text('question,answer\nIs it raining?,"No, the sun is out."\n', encoding="utf-8")
    full = ["classify", "-i", str(pairs), "--field", "question", "--pair-field", "answer", "--model", str(tiny_bert),
            "--allow-random-head", "-q"]
    assert main(full) == 0
    (record,) = _lines(capsys.readouterr().out)
    assert (record["text"], record["text_pair"]) == ("Is it raining?", "No, the sun is out.")
    assert main([*full, "--format", "jsonl"]) == 0
    (short,) = _lines(capsys.readouterr().out)
    assert "text" not in short and "text_pair" not in short and short["label"] == record["label"]
    assert np.float32(short["score"]) == np.float32(record["score"])  # type: ignore[arg-type]
    assert len(repr(short["score"])) <= 10 < len(repr(record["score"]))  # float32's shortest repr


def test_device_option_on_every_main_job_command_and_cuda_by_default(tiny_bert: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    commands = make_parser(plugins=False)._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in MAIN_JOB:
        assert any("--device" in a.option_strings for a in commands[name]._actions), name
        assert any("--quiet" in a.option_strings for a in commands[name]._actions), name
    assert default_device(None) == ("cuda" if torch.cuda.is_available() else None)
    assert default_device("cpu") == "cpu"
    assert main(["similarity", "a cat", "a cat", "--model", str(tiny_bert), "--device", "cpu"]) == 0
    assert float(capsys.readouterr().out) == pytest.approx(1.0)


def test_progress_is_counted_in_tokens(tiny_bert: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tqdm import tqdm

    pipe = bertzoo.Pipeline(tiny_bert)
    texts = ["short", "a somewhat longer text here", "mid length text"] * 3
    total = int(pipe.tokenizer.encode_ids(texts).lengths.sum())
    pipe.embed(texts, progress=True, batch_tokens=16)
    err = capsys.readouterr().err
    size = tqdm.format_sizeof(total)
    assert f"{size}/{size}" in err and "tok/s" in err


def test_prompt_and_truncate_dim_match_the_python_api(tiny_bert: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = ["what is a cat?", "a cat is an animal"]
    base = ["embed", *texts, "--model", str(tiny_bert), "--format", "jsonl"]
    assert main([*base, "--prompt", "query: ", "--truncate-dim", "8"]) == 0
    got = _vectors(_lines(capsys.readouterr().out))
    np.testing.assert_array_equal(got, bertzoo.embed(texts, model=tiny_bert, prompt="query: ", truncate_dim=8))
    assert got.shape == (2, 8) and not np.allclose(np.linalg.norm(got, axis=1), 1.0)  # cut, not renormalised
    assert main(["similarity", *texts, "--model", str(tiny_bert), "--prompt", "query: ", "--truncate-dim", "8"]) == 0
    cosine = float(got[0] @ got[1] / np.linalg.norm(got[0]) / np.linalg.norm(got[1]))
    assert float(capsys.readouterr().out) == pytest.approx(cosine, abs=1e-6)
    assert main([*base, "--prompt-name", "query"]) == 2
    assert "query" in capsys.readouterr().err
