"""Checkpoint hardening (issue 19 items 1, 4, 7, 12; issue 12 item 6): contained paths, the pickle
opt-in on every route, corrupt weights, recoverable saves, unsupported families, full component names.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import bertzoo
from bertzoo import _fs
from bertzoo.checkpoint import (
    all_finite,
    read_hf_config,
    read_sentence_transformers_info,
    read_state_dict,
    weight_files,
)
from bertzoo.discovery import get_registry
from bertzoo.errors import CheckpointError
from bertzoo.family import Family
from bertzoo.registry import Registry

TINY = {
    "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 37, "max_position_embeddings": 64,
}


def tiny_model(**overrides: object) -> nn.Module:
    return bertzoo.build(dict(TINY), **overrides)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trunk saved once; tests copy it before damaging it."""
    folder = tmp_path_factory.mktemp("saved") / "m"
    tiny_model().save_pretrained(folder)
    return folder


def copy_of(saved: Path, tmp_path: Path, name: str = "m") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for entry in saved.iterdir():
        (folder / entry.name).write_bytes(entry.read_bytes())
    return folder


def dead_pid() -> int:
    """The pid of a process that has exited (a killed save's)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True, timeout=60)
    return int(done.stdout)


# -- issue 12 item 6: config.json records full component names --------------------------------------
def test_config_json_records_full_component_names(tmp_path: Path) -> None:
    tiny_model(attention="sdpa").save_pretrained(tmp_path / "m")
    components = json.loads((tmp_path / "m" / "config.json").read_text())["bertzoo"]["components"]
    assert components["attention"]["name"] == "bertzoo:sdpa"
    assert (components["embedding"]["name"], components["layer"]["name"], components["pooler"]["name"]) == (
        "bertzoo:bert", "bertzoo:bert", "bertzoo:cls-tanh")
    loaded = bertzoo.from_pretrained(tmp_path / "m")
    assert loaded.spec.components.attention.name == "bertzoo:sdpa" and loaded.load_report.clean


def test_auto_attention_stays_auto(tmp_path: Path) -> None:
    tiny_model().save_pretrained(tmp_path / "m")
    components = json.loads((tmp_path / "m" / "config.json").read_text())["bertzoo"]["components"]
    assert components["attention"]["name"] == "auto"


def test_a_second_sdpa_does_not_change_what_a_save_reloads(tmp_path: Path) -> None:
    """A short name saved today turns ambiguous when another plugin registers it; a full one does not."""
    tiny_model(attention="sdpa").save_pretrained(tmp_path / "m")
    reg = Registry()
    for record in get_registry().records():
        reg.add(record)
    reg.register("attention", "sdpa", get_registry().get("attention", "bertzoo:sdpa").target, plugin="tests")
    loaded = bertzoo.from_pretrained(tmp_path / "m", registry=reg)
    assert loaded.spec.components.attention.name == "bertzoo:sdpa"


# -- issue 19 item 1: contained paths, the pickle opt-in on every route -----------------------------
def write_index(folder: Path, names: list[str]) -> None:
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {f"k{i}": name for i, name in enumerate(names)}}))


def test_a_safetensors_index_naming_a_pickle_is_refused_without_opt_in(tmp_path: Path) -> None:
    torch.save({"embeddings.word_embeddings.weight": torch.zeros(2, 2)}, tmp_path / "evil.bin")
    write_index(tmp_path, ["evil.bin"])
    with pytest.raises(CheckpointError, match=r"not safetensors files \(evil.bin\).*allow_pickle=True"):
        weight_files(tmp_path)
    files = weight_files(tmp_path, allow_pickle=True)  # the opt-in reads it
    assert set(read_state_dict(files, allow_pickle=True)) == {"embeddings.word_embeddings.weight"}


def test_reading_a_pickle_file_needs_the_opt_in(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(1)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="not a safetensors file.*allow_pickle=True"):
        read_state_dict([tmp_path / "pytorch_model.bin"])


@pytest.mark.parametrize("entry", ["../outside.safetensors", "/etc/passwd", "sub/../../outside.safetensors"])
def test_index_entries_outside_the_folder_are_refused(tmp_path: Path, entry: str) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    save_file({"a": torch.zeros(1)}, str(tmp_path / "outside.safetensors"))
    write_index(folder, [entry])
    with pytest.raises(CheckpointError) as err:
        weight_files(folder, allow_pickle=True)
    message = str(err.value)
    assert "model.safetensors.index.json" in message and repr(entry) in message
    assert "outside the checkpoint folder" in message and "fix the entry" in message


def test_a_shard_symlinked_outside_the_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    save_file({"a": torch.zeros(1)}, str(tmp_path / "outside.safetensors"))
    (folder / "model-00001-of-00001.safetensors").symlink_to(tmp_path / "outside.safetensors")
    write_index(folder, ["model-00001-of-00001.safetensors"])
    with pytest.raises(CheckpointError, match="outside the checkpoint folder"):
        weight_files(folder)


def test_hub_cache_snapshots_linking_into_their_blobs_load(tmp_path: Path) -> None:
    """The HF cache keeps files in blobs/ and links them from snapshots/<rev>/: that is inside."""
    repo = tmp_path / "hub" / "models--org--tiny"
    model = tiny_model()
    model.save_pretrained(tmp_path / "plain", max_shard_size="20KB")
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    for i, entry in enumerate(sorted((tmp_path / "plain").iterdir())):
        blob = repo / "blobs" / f"blob{i}"
        blob.write_bytes(entry.read_bytes())
        (snapshot / entry.name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    loaded = bertzoo.from_pretrained(snapshot)
    assert loaded.load_report.clean and len(loaded.load_report.files) > 1


@pytest.mark.parametrize(("module", "path"), [("Transformer", "../elsewhere"), ("Transformer", "/etc"),
                                              ("Pooling", "../../pool")])
def test_modules_json_paths_outside_the_folder_are_refused(tmp_path: Path, module: str, path: str) -> None:
    folder = tmp_path / "st"
    folder.mkdir()
    (tmp_path / "elsewhere").mkdir()
    paths = {"Transformer": "", "Pooling": "1_Pooling"} | {module: path}
    (folder / "modules.json").write_text(json.dumps([
        {"idx": i, "name": str(i), "path": paths[kind], "type": f"sentence_transformers.models.{kind}"}
        for i, kind in enumerate(("Transformer", "Pooling"))]))
    with pytest.raises(CheckpointError) as err:
        read_sentence_transformers_info(folder)
    assert f"{module} path names {path!r}" in str(err.value) and "outside the checkpoint folder" in str(err.value)


def test_pickles_need_a_torch_without_the_weights_only_bypass(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    torch.save({"w": torch.zeros(1)}, tmp_path / "pytorch_model.bin")
    files = weight_files(tmp_path, allow_pickle=True)
    monkeypatch.setattr(torch, "__version__", "2.5.1+cpu")
    with pytest.raises(CheckpointError, match=r"allow_pickle=True needs torch >= 2\.6 \(this is torch 2\.5\.1\+cpu\)"):
        read_state_dict(files, allow_pickle=True)
    monkeypatch.setattr(torch, "__version__", "2.6.0")
    assert set(read_state_dict(files, allow_pickle=True)) == {"w"}


def test_from_pretrained_honours_the_opt_in_for_a_pickle_shard(saved: Path, tmp_path: Path) -> None:
    folder = copy_of(saved, tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "shard.bin")
    write_index(folder, ["shard.bin"])
    with pytest.raises(CheckpointError, match="allow_pickle"):
        bertzoo.from_pretrained(folder)
    assert bertzoo.from_pretrained(folder, allow_pickle=True).load_report.clean


# -- issue 19 item 4: corrupt weights at load -------------------------------------------------------
def rewrite(folder: Path, key: str, change: object) -> None:
    state = load_file(str(folder / "model.safetensors"))
    state[key] = change(state[key])  # type: ignore[operator]
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def poison(value: float) -> object:
    def change(t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        t.view(-1)[3] = value
        return t
    return change


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_the_key(saved: Path, tmp_path: Path, value: float) -> None:
    folder = copy_of(saved, tmp_path)
    rewrite(folder, "encoder.layer.1.output.dense.weight", poison(value))
    with pytest.raises(CheckpointError, match=r"NaN or Inf values in encoder\.layer\.1\.output\.dense\.weight.*"
                                              r"check_finite=False"):
        bertzoo.from_pretrained(folder)
    loose = bertzoo.from_pretrained(folder, check_finite=False)  # the documented switch
    assert not torch.isfinite(loose.encoder.layer[1].output.dense.weight).all()


def test_non_finite_bfloat16_weights_are_found(saved: Path, tmp_path: Path) -> None:
    folder = copy_of(saved, tmp_path)
    rewrite(folder, "embeddings.word_embeddings.weight", lambda t: poison(float("nan"))(t).to(torch.bfloat16))  # type: ignore[operator]
    with pytest.raises(CheckpointError, match="embeddings.word_embeddings.weight"):
        bertzoo.from_pretrained(folder, dtype="auto")


def test_a_sum_that_overflows_is_not_corruption() -> None:
    assert all_finite(torch.tensor([3e38, 3e38]))
    assert all_finite(torch.full((70000,), 60000.0, dtype=torch.float16))
    assert not all_finite(torch.tensor([1.0, float("nan")]))
    assert all_finite(torch.arange(3))  # integers are never non-finite


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.bool])
def test_integer_tensors_for_float_weights_are_refused(saved: Path, tmp_path: Path, dtype: torch.dtype) -> None:
    folder = copy_of(saved, tmp_path)
    rewrite(folder, "pooler.dense.weight", lambda t: (t * 100).to(dtype))
    name = str(dtype).replace("torch.", "")
    with pytest.raises(CheckpointError, match=rf"dtype mismatch pooler\.dense\.weight: checkpoint {name} vs model float32"):
        bertzoo.from_pretrained(folder)
    loose = bertzoo.from_pretrained(folder, strict=False)
    assert loose.load_report.mismatched_dtype == [("pooler.dense.weight", name, "float32")]
    assert not loose.load_report.clean and "pooler.dense.weight" in loose.load_report.newly_initialized


# -- issue 19 item 7: recoverable saves -------------------------------------------------------------
KILLER = """
import os, signal, sys
from pathlib import Path
from bertzoo import _fs

target, kill_after = sys.argv[1], int(sys.argv[2])
real_replace, renames = os.replace, []

def replace_then_die(src, dst):
    real_replace(src, dst)
    renames.append(dst)
    if len(renames) == kill_after:
        os.kill(os.getpid(), signal.SIGKILL)

os.replace = replace_then_die
with _fs.atomic_folder(target) as tmp:
    (tmp / "v.txt").write_text("new")
    if kill_after == 0:
        os.kill(os.getpid(), signal.SIGKILL)  # killed while writing
"""


@pytest.mark.parametrize(("kill_after", "expected"), [(0, "old"), (1, "old"), (2, "new"), (3, "new")])
def test_a_save_killed_anywhere_is_recovered(tmp_path: Path, kill_after: int, expected: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """Killed (SIGKILL) while writing, after tmp→new, after target→old (no target on disk), after new→target."""
    target = tmp_path / "m"
    with _fs.atomic_folder(target) as tmp:
        (tmp / "v.txt").write_text("old")
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    done = subprocess.run([sys.executable, str(script), str(target), str(kill_after)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert any(_fs.is_temporary(p.name) for p in tmp_path.iterdir())
    if kill_after == 2:
        assert not target.exists()  # the state the issue reports: no folder at all
    with caplog.at_level(logging.WARNING, logger="bertzoo._fs"):
        actions = _fs.recover_folder(target)
    assert actions and all(action in caplog.text for action in actions)
    assert (target / "v.txt").read_text() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killer.py", "m"]


def test_loading_rolls_back_a_swap_that_lost_the_folder(saved: Path, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    pid = dead_pid()
    copy_of(saved, tmp_path, f".m.old-{pid}-0badc0de")  # killed between the two renames
    (tmp_path / f".m.tmp-{pid}-12345678").mkdir()  # and a killed save's unfinished temporary
    with caplog.at_level(logging.WARNING, logger="bertzoo._fs"):
        model = bertzoo.from_pretrained(tmp_path / "m")
    assert model.load_report.clean
    assert "rolled back an interrupted save" in caplog.text and "deleted .m.tmp-" in caplog.text
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_saving_finishes_a_complete_swap_and_cleans_stale_temporaries(saved: Path, tmp_path: Path) -> None:
    pid = dead_pid()
    copy_of(saved, tmp_path, f".m.new-{pid}-0000beef")  # complete, not yet swapped in
    (tmp_path / f".m.tmp-{pid}-11111111").mkdir()
    tiny_model().save_pretrained(tmp_path / "m")
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_temporaries_of_a_running_save_are_left_alone(tmp_path: Path) -> None:
    live = tmp_path / f".m.tmp-{os.getppid()}-22222222"  # the test runner's parent still runs
    live.mkdir()
    with _fs.atomic_folder(tmp_path / "m") as tmp:
        (tmp / "v.txt").write_text("x")
    assert live.is_dir() and (tmp_path / "m" / "v.txt").read_text() == "x"


def test_a_symlinked_target_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "store" / "model-v1"
    tiny_model().save_pretrained(real)
    (real / "tokenizer.json").write_text("{}")
    link = tmp_path / "current"
    link.symlink_to(real, target_is_directory=True)
    tiny_model(attention="eager").save_pretrained(link)
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert json.loads((real / "config.json").read_text())["bertzoo"]["components"]["attention"]["name"] == (
        "bertzoo:eager")
    assert (real / "tokenizer.json").is_file()
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["model-v1"]
    assert bertzoo.from_pretrained(link).load_report.clean


def test_atomic_write_keeps_a_symlinked_file_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("old")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    assert _fs.atomic_write_text(tmp_path / "link.txt", "new") == tmp_path / "link.txt"
    assert (tmp_path / "link.txt").is_symlink() and (tmp_path / "real.txt").read_text() == "new"


# -- issue 19 item 12: unsupported families are refused ----------------------------------------------
def test_a_model_type_no_family_reads_is_refused(saved: Path, tmp_path: Path) -> None:
    folder = copy_of(saved, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "funnel"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"model_type='funnel'.*supported families: albert, bert, .*roberta"):
        bertzoo.from_pretrained(folder)


def test_a_family_plugin_extends_the_supported_model_types(saved: Path, tmp_path: Path) -> None:
    folder = copy_of(saved, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "funnel"
    (folder / "config.json").write_text(json.dumps(config))
    reg = Registry()
    for record in get_registry().records():
        reg.add(record)
    funnel = Family(model_type="funnel", description="a test family", base_prefix="funnel",
                    trunk_architecture="FunnelModel")
    reg.register("family", "funnel", funnel, plugin="tests")
    assert read_hf_config(folder, reg)["model_type"] == "funnel"  # the test registry reads it; the default one does not
    with pytest.raises(CheckpointError, match=r"supported families: albert, bert, .*xlm-roberta\)"):
        read_hf_config(folder)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_the_file_scan_finds_nan_and_inf_across_read_blocks(tmp_path: Path, dtype: torch.dtype,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """from_pretrained scans safetensors files by reading them in blocks (resident memory stays flat)."""
    from bertzoo.checkpoint import weights

    monkeypatch.setattr(weights, "_SCAN_BLOCK", 64)  # many blocks per tensor
    tensors = {name: torch.randn(40, dtype=torch.float32).to(dtype) for name in ("clean", "nan", "inf", "ints")}
    tensors["nan"][37] = float("nan")  # in the last block
    tensors["inf"][3] = float("-inf")  # in the first
    tensors["ints"] = torch.arange(40, dtype=torch.int32)
    save_file(tensors, str(tmp_path / "w.safetensors"))
    assert sorted(weights.scan_non_finite(tmp_path / "w.safetensors")) == ["inf", "nan"]
