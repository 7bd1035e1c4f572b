"""Issue 19 on the corpus side: nothing non-finite written, one writer per folder, inputs never
replaced, and every check before the first batch. A tiny random model in a tmp dir; real second
processes for the folder lock.

- Item 4: a NaN / Inf weight (set on the loaded model, so the load-time check does not stop it
  first) makes ``bertzoo.embed``, ``Pipeline.embed``, ``embed_stream`` and folder jobs fail naming
  the text (and the shard), in every stored precision; float16 overflow too.
- Item 5: a second run on a locked folder (``resume`` or not, in-process or the CLI) is refused
  with the holder's pid; a killed holder leaves no stale lock.
- Item 6: an output that is the input (by inode: symlinks and hard links) is refused.
- Item 8: a lone surrogate, a giant line and an unwritable output are found before any work, and
  reading a 20 MB line takes bounded memory.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import bertzoo
import bertzoo.cli._common
from bertzoo.corpus import (
    LOCK_NAME,
    MANIFEST,
    FolderLockedError,
    InputSource,
    check_output_file,
    embed_stream,
    embed_to_folder,
    read_manifest,
    read_texts,
)
from bertzoo.errors import BertzooError, InputError
from bertzoo.inference.pipeline import get_pipeline
from bertzoo.inference.vectors import NonFiniteVectorError

pytest.importorskip("transformers", reason="builds the tiny random model (dev extra)")

TEXTS = ["hello world", "a b c", "the cat sat", "more text here", "x", "a zebra grazes", "y y", "last one"]
ZEBRA = 5  # index of the one text holding the corrupted token


@pytest.fixture(scope="module")
def model(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny model: its cached pipeline is ours to corrupt."""
    folder = tmp_path_factory.mktemp("corruptible") / "model"
    shutil.copytree(tiny_bert, folder)
    return folder


@pytest.fixture
def corrupt(model: Path) -> Iterator[Any]:
    """``corrupt(value)``: set the embedding row of "zebra" to ``value`` (restored afterwards)."""
    weight = get_pipeline("embed", model).bert.embeddings.word_embeddings.weight
    zebra = (model / "vocab.txt").read_text(encoding="utf-8").split("\n").index("zebra")  # one word piece
    saved = weight[zebra].clone()

    def set_to(value: float) -> None:
        with torch.no_grad():
            weight[zebra] = value

    yield set_to
    with torch.no_grad():
        weight[zebra] = saved


def write_lines(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    return path


def folder_job(model: Path, source: Path | InputSource, out: Path, **options: Any) -> dict[str, Any]:
    src = source if isinstance(source, InputSource) else InputSource.from_path(str(source))
    options.setdefault("shard_size", 2)
    options.setdefault("chunk_size", 2)
    return embed_to_folder(src, out, model, threads=1, truncate="silent", **options)


# -- item 4: never a non-finite vector ------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_embed_refuses_a_non_finite_vector_naming_the_text(model: Path, corrupt: Any, value: float) -> None:
    clean = bertzoo.embed(TEXTS, model=model, threads=1)
    corrupt(value)
    with pytest.raises(NonFiniteVectorError, match=f"text {ZEBRA} holds NaN or Inf"):
        bertzoo.embed(TEXTS, model=model, threads=1)
    with pytest.raises(NonFiniteVectorError, match=f"text {ZEBRA} "):
        get_pipeline("embed", model).embed(TEXTS, output="torch")
    # the other texts are untouched: the corruption is the zebra token's only
    others = [t for i, t in enumerate(TEXTS) if i != ZEBRA]
    np.testing.assert_allclose(bertzoo.embed(others, model=model, threads=1), np.delete(clean, ZEBRA, axis=0),
                               atol=1e-6)


@pytest.mark.parametrize("precision", ["float32", "float16", "int8", "binary"])
def test_embed_stream_refuses_a_non_finite_vector_in_every_precision(model: Path, corrupt: Any,
                                                                     precision: str) -> None:
    corrupt(float("inf"))
    chunks = embed_stream(TEXTS, model=model, chunk_size=2, precision=precision, threads=1)
    first = [next(chunks), next(chunks)]  # texts 0-3 are clean
    assert all(np.isfinite(c.vectors.astype(np.float32)).all() for c in first)
    with pytest.raises(NonFiniteVectorError, match=f"text {ZEBRA} holds NaN or Inf"):
        next(chunks)


@pytest.mark.parametrize("precision", ["int8", "binary"])
def test_folder_job_stops_before_the_shard_with_a_non_finite_vector(model: Path, corrupt: Any, tmp_path: Path,
                                                                     precision: str) -> None:
    corrupt(float("nan"))
    out = tmp_path / "out"
    with pytest.raises(NonFiniteVectorError, match=rf"text {ZEBRA} \(shard 2\) holds NaN or Inf"):
        folder_job(model, write_lines(tmp_path / "in.txt", TEXTS), out, precision=precision)
    manifest = read_manifest(out)
    assert manifest["rows_done"] == 4 and not manifest["complete"]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST] + [f"shard-0000{i}{s}" for i in (0, 1)
                                                                 for s in (".npy", ".rows.npy")]


def test_float16_overflow_is_refused(model: Path, tmp_path: Path) -> None:
    pipe = get_pipeline("embed", model)
    norm = [p for n, p in pipe.bert.named_parameters() if "LayerNorm.weight" in n][-1]
    saved = norm.detach().clone()
    try:
        with torch.no_grad():
            norm.mul_(1e6)  # finite float32 vectors far beyond float16's range
        assert np.isfinite(bertzoo.embed(TEXTS, model=model, normalize=False, threads=1)).all()
        with pytest.raises(NonFiniteVectorError, match="text 0 exceeds float16's range"):
            list(embed_stream(TEXTS, model=model, precision="float16", normalize=False, threads=1))
        assert len(list(embed_stream(TEXTS, model=model, precision="float16", normalize=True, threads=1))) == 1
    finally:
        with torch.no_grad():
            norm.copy_(saved)


# -- item 5: one writer per output folder ---------------------------------------------------------------

HOLD = ("import sys\nfrom bertzoo.corpus.lock import FolderLock\nwith FolderLock(sys.argv[1]):\n"
        "    print('locked', flush=True)\n    sys.stdin.read()\n")


def hold_lock(folder: Path) -> subprocess.Popen[str]:
    """A real second process holding ``folder``'s lock until its stdin closes."""
    folder.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_locked_folder_refuses_a_second_run_with_the_holders_pid(model: Path, tmp_path: Path, cli: Any) -> None:
    source = write_lines(tmp_path / "in.txt", TEXTS)
    out = tmp_path / "out"
    holder = hold_lock(out)
    try:
        for resume in (False, True):
            with pytest.raises(FolderLockedError, match=f"pid {holder.pid}"):
                folder_job(model, source, out, resume=resume)
        assert [p.name for p in out.iterdir()] == [LOCK_NAME]  # the refused runs wrote nothing
        proc = cli("embed", "--input", str(source), "--output", f"{out}/", "--model", str(model), "--threads", "1")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and f"pid {holder.pid}" in proc.stderr
    finally:
        holder.communicate("", timeout=60)
    assert not (out / LOCK_NAME).exists()  # released and removed by its holder
    assert folder_job(model, source, out)["complete"]
    assert not (out / LOCK_NAME).exists()


def test_a_killed_holder_leaves_no_stale_lock(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = hold_lock(out)
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=60)
    assert (out / LOCK_NAME).exists()  # the file stays; the OS dropped the lock with the process
    assert folder_job(model, write_lines(tmp_path / "in.txt", TEXTS), out)["complete"]
    assert not (out / LOCK_NAME).exists()


def test_two_cli_runs_on_one_folder(model: Path, tmp_path: Path, cli: Any) -> None:
    """The issue's case: run A reads stdin slowly (holding the folder); run B on the same folder is refused."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTZOO_")}
    first = subprocess.Popen([sys.executable, "-m", "bertzoo.cli", "embed", "--input", "-", "--output", f"{out}/",
                              "--model", str(model), "--threads", "1", "--no-progress", "--chunk-size", "2"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert first.stdin is not None
        first.stdin.write("first text\n")
        first.stdin.flush()
        while not (out / MANIFEST).exists() and first.poll() is None:  # it holds the lock from before the manifest
            time.sleep(0.1)
        second = cli("embed", "--input", str(write_lines(tmp_path / "in.txt", TEXTS)), "--output", f"{out}/",
                     "--model", str(model), "--threads", "1", "--resume")
        assert second.returncode == 2 and f"pid {first.pid}" in second.stderr, second.stderr
        _, err = first.communicate("second text\n", timeout=120)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
    assert read_manifest(out)["rows_done"] == 2 and not (out / LOCK_NAME).exists()


# -- item 6: never replace the input --------------------------------------------------------------------


def test_an_output_that_is_the_input_is_refused(tmp_path: Path) -> None:
    data = write_lines(tmp_path / "data.jsonl", ['{"text": "a"}'])
    (tmp_path / "link.jsonl").symlink_to(data)
    os.link(data, tmp_path / "hard.jsonl")
    for output in (data, tmp_path / "link.jsonl", tmp_path / "hard.jsonl"):
        with pytest.raises(InputError, match="is the input file .*would destroy the input"):
            check_output_file(output, inputs=[data])
    with pytest.raises(InputError, match="is the input file"):  # the input named through the link
        check_output_file(data, inputs=[tmp_path / "link.jsonl"])
    check_output_file(tmp_path / "other.jsonl", inputs=[data, None, "-"])
    check_output_file(None, inputs=[data])
    assert data.read_text() == '{"text": "a"}\n'


def test_a_folder_job_never_writes_over_its_input(model: Path, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.txt", TEXTS)
    with pytest.raises(InputError, match="is the input file"):
        folder_job(model, source, source)
    out = tmp_path / "out"
    folder_job(model, source, out)
    inside = out / "in.txt"
    shutil.copy(source, inside)
    with pytest.raises(InputError, match="is inside the --output folder"):
        folder_job(model, inside, out, resume=True)
    assert inside.read_text() == source.read_text()


# -- item 8: every check before the first batch ---------------------------------------------------------


def test_a_lone_surrogate_is_found_by_the_scan_before_any_shard(model: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "ok"}\n{"text": "emoji \\ud83d\\ude00 pair"}\n{"text": "bad \\ud800 half"}\n',
                      encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"in.jsonl line 3 field 'text' holds a lone surrogate \(U\+D800"):
        folder_job(model, source, out, shard_size=1, chunk_size=1)
    assert list(out.iterdir()) == []
    with pytest.raises(InputError, match="item 1 holds a lone surrogate"):
        list(embed_stream(["fine", "bad \ud800"], model=model, threads=1))
    pair = tmp_path / "pair.jsonl"
    pair.write_text('{"text": "\\ud83d\\ude00"}\n', encoding="utf-8")  # a whole UTF-16 pair is one character
    assert read_texts(str(pair)) == ["\U0001f600"]


def test_a_missing_or_unwritable_output_folder_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist; create it first"):
        check_output_file(tmp_path / "missing" / "out.npy")
    with pytest.raises(InputError, match="is a folder"):
        check_output_file(tmp_path)
    (tmp_path / "dangling.npy").symlink_to(tmp_path / "nowhere" / "x.npy")  # judged by where it points
    with pytest.raises(InputError, match="does not exist"):
        check_output_file(tmp_path / "dangling.npy")
    check_output_file(tmp_path / "fine.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling.npy"]  # the probe is gone
    # root writes into a mode-500 folder; sysfs refuses even root
    locked = Path("/sys") if os.geteuid() == 0 else tmp_path / "locked"
    if not locked.is_dir():
        pytest.skip("running as root without /sys: no folder here refuses root's writes")
    if locked != Path("/sys"):
        locked.mkdir(mode=0o500)
    try:
        with pytest.raises(InputError, match="is not writable"):
            check_output_file(locked / "out.jsonl")
    finally:
        if locked != Path("/sys"):
            locked.chmod(0o700)


def test_a_giant_line_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    with open(source, "wb") as f:
        f.write(b"short\n" + b"x" * (20 << 20) + b"\nafter\n")  # a 20 MB line 2
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"in.txt line 2 is longer than 1,048,576 bytes.*--max-line-bytes"):
            InputSource.from_path(str(source)).scan()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"reading the line took {peak:,} bytes"


def test_max_line_bytes_boundary_and_override(model: Path, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.txt", ["a" * 100, "b" * 101, "c"])
    with pytest.raises(InputError, match="line 2 is longer than 100 bytes"):
        read_texts(str(source), max_line_bytes=100)
    assert [len(t) for t in read_texts(str(source), max_line_bytes=101)] == [100, 101, 1]
    out = tmp_path / "out"
    with pytest.raises(InputError, match="line 2 is longer than 100 bytes"):
        folder_job(model, InputSource.from_path(str(source), max_line_bytes=100), out)
    assert list(out.iterdir()) == []  # found by the scan, before anything was written
    with pytest.raises(BertzooError, match="max_line_bytes=0 must be at least 1"):
        InputSource.from_path(str(source), max_line_bytes=0)


# -- the CLI's single-file outputs (wired in core/cli by its owner) ---------------------------------------

_WIRED = "check_output_file" in Path(bertzoo.cli._common.__file__).read_text(encoding="utf-8")
needs_wiring = pytest.mark.skipif(not _WIRED, reason="core/cli does not call bertzoo.corpus.check_output_file yet "
                                                     "(helper B's round-2 report lists the wiring for core/cli's owner)")


@needs_wiring
def test_cli_refuses_an_output_that_is_the_input(tmp_path: Path, cli: Any) -> None:
    data = write_lines(tmp_path / "data.jsonl", ['{"text": "a"}', '{"text": "b"}'])
    (tmp_path / "link.jsonl").symlink_to(data)
    for output in (data, tmp_path / "link.jsonl"):
        proc = cli("embed", "--input", str(data), "--output", str(output), "--model", str(tmp_path / "no-model"))
        assert proc.returncode == 2 and "is the input file" in proc.stderr, proc.stderr
    assert data.read_text() == '{"text": "a"}\n{"text": "b"}\n'


@needs_wiring
def test_cli_checks_the_output_folder_and_line_length_before_loading_the_model(tmp_path: Path, cli: Any) -> None:
    data = write_lines(tmp_path / "in.txt", ["short", "x" * 50])
    missing_model = str(tmp_path / "no-model")  # a check made after loading would report the model instead
    proc = cli("embed", "--input", str(data), "--output", str(tmp_path / "missing" / "out.npy"), "--model",
               missing_model)
    assert proc.returncode == 2 and "does not exist; create it first" in proc.stderr, proc.stderr
    proc = cli("embed", "--input", str(data), "--output", str(tmp_path / "out.jsonl"), "--model", missing_model,
               "--max-line-bytes", "10")
    assert proc.returncode == 2 and "line 2 is longer than 10 bytes" in proc.stderr, proc.stderr


def test_a_device_output_is_refused_not_replaced() -> None:
    """``--output /dev/null`` would be replaced by the atomic rename; it is refused instead."""
    from bertzoo.corpus.guards import check_output_file

    with pytest.raises(InputError, match="is not a regular file"):
        check_output_file("/dev/null")
