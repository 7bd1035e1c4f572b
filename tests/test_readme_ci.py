""".ci/run runs exactly the README's two commands and fails when any of them fails.

The behaviour is checked by running the real script in a scratch copy of the repository with
stub commands (python3, pip, bertzoo, ruff, mypy, pytest) first on ``PATH``: each stub logs its
call and exits with the status the test asks for.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUBS = ("python3", "pip", "bertzoo", "ruff", "mypy", "pytest")


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    return [block.strip() for block in blocks[:2]]


def test_readme_opens_with_two_one_line_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first_fence = text.index("```")
    assert text[first_fence:].startswith("```bash\n"), "the README's first code block is the set-up command"
    setup, tests = readme_commands()
    assert "\n" not in setup and "\n" not in tests
    assert "pip install -c constraints.txt" in setup and "python3 -m venv .venv" in setup
    assert "pytest" in tests


def test_ci_runs_the_readme_commands_verbatim_in_order() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    setup, tests = readme_commands()
    assert f"step '{setup}'" in script and f"step '{tests}'" in script
    assert script.index(setup) < script.index(tests)
    assert re.search(r"^set -euo pipefail$", script, flags=re.M)
    assert os.access(ROOT / ".ci" / "run", os.X_OK) or script.startswith("#!/usr/bin/env bash")


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A copy of the files .ci/run touches, plus stub commands in ``stubs/``."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    shutil.copy(ROOT / "README.md", repo / "README.md")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in STUBS:
        venv = 'if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && : > "$3/bin/activate"; fi\n' if name == "python3" else ""
        stub = stubs / name
        stub.write_text(
            "#!/usr/bin/env bash\n"
            f'echo "{name} $*" >> "$STUB_LOG"\n'
            f"{venv}"
            f'exit "${{STUB_{name.upper()}_RC:-0}}"\n'
        )
        stub.chmod(0o755)
    return repo


def run_ci(repo: Path, ci: str | None = "true", **rcs: int) -> tuple[int, list[str]]:
    log = repo.parent / "calls.log"
    log.unlink(missing_ok=True)
    env = {"PATH": f"{repo.parent / 'stubs'}:/usr/bin:/bin", "STUB_LOG": str(log), "HOME": str(repo.parent)}
    if ci is not None:
        env["CI"] = ci
    env.update({f"STUB_{name.upper()}_RC": str(rc) for name, rc in rcs.items()})
    proc = subprocess.run(["bash", str(repo / ".ci" / "run")], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    calls = [line.strip() for line in log.read_text().splitlines()] if log.exists() else []
    return proc.returncode, calls


ALL_CALLS = [
    "python3 -m venv .venv",
    "pip install -c constraints.txt -e .[dev] -e examples/bertzoo-example-plugin",
    "bertzoo embed bertzoo embeds text with all-MiniLM-L6-v2, no set-up needed.",
    "ruff check .",
    "mypy",
    "pytest -q -n 2 --dist loadfile tests examples/bertzoo-example-plugin/tests --bertzoo-conformance=example",
]


def test_green_run_calls_every_command_in_order(scratch: Path) -> None:
    assert run_ci(scratch) == (0, ALL_CALLS)


@pytest.mark.parametrize(
    ("failing", "rc", "calls_made"),
    [
        ("pip", 1, 2),  # a failed install must not go on to lint and test (the `&&` + set -e trap)
        ("bertzoo", 1, 3),
        ("ruff", 1, 4),
        ("mypy", 1, 5),
        ("pytest", 1, 6),  # a failing test
        ("pytest", 5, 6),  # pytest's "no tests ran"
    ],
)
def test_any_failure_fails_ci(scratch: Path, failing: str, rc: int, calls_made: int) -> None:
    status, calls = run_ci(scratch, **{failing: rc})
    assert status == rc
    assert calls == ALL_CALLS[:calls_made]


def test_refuses_to_delete_a_venv_outside_ci(scratch: Path) -> None:
    (scratch / ".venv").mkdir()
    (scratch / ".venv" / "keep").write_text("mine")
    status, calls = run_ci(scratch, ci=None)
    assert status == 2 and calls == []
    assert (scratch / ".venv" / "keep").read_text() == "mine"
    assert run_ci(scratch, ci="true") == (0, ALL_CALLS)  # in CI it starts from a fresh venv
    assert not (scratch / ".venv" / "keep").exists()
