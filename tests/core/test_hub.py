"""Hub id resolution against a hand-built HF cache (reference §9.2): no network."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from bertzoo.errors import CheckpointError
from bertzoo.hub import hub_cache_dir, is_offline, looks_like_hub_id, resolve_model_dir

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_cached_repo(cache: Path, repo_id: str, files: dict[str, bytes], commit: str = COMMIT,
                     ref: str = "main") -> Path:
    """Lay out ``models--org--name`` with refs/<ref>, snapshots/<commit>/ symlinks and blobs/."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    snapshot = repo / "snapshots" / commit
    for name, content in files.items():
        blob = repo / "blobs" / hashlib.sha256(content).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(content)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


CHECKPOINT_FILES = {"config.json": b'{"model_type": "bert"}', "model.safetensors": b"weights"}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "hub-cache"
    root.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a miss must never reach the network in tests
    return root


def test_cache_dir_and_offline_follow_the_environment_now(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert hub_cache_dir() == tmp_path / "c"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert is_offline()


def test_hub_id_shapes() -> None:
    assert looks_like_hub_id("sentence-transformers/all-MiniLM-L6-v2")
    assert looks_like_hub_id("bert-base-uncased")
    assert not looks_like_hub_id("./local/folder")
    assert not looks_like_hub_id("../up")


def test_cached_repo_resolves_to_its_snapshot(cache: Path) -> None:
    snapshot = make_cached_repo(cache, "org/tiny-bert", CHECKPOINT_FILES)
    folder = resolve_model_dir("org/tiny-bert")
    assert folder == snapshot
    assert (folder / "config.json").read_bytes() == CHECKPOINT_FILES["config.json"]


def test_revision_by_branch_and_by_commit(cache: Path) -> None:
    other = "f" * 40
    make_cached_repo(cache, "org/tiny-bert", CHECKPOINT_FILES)
    snap_dev = make_cached_repo(cache, "org/tiny-bert", CHECKPOINT_FILES, commit=other, ref="dev")
    assert resolve_model_dir("org/tiny-bert", revision="dev") == snap_dev
    assert resolve_model_dir("org/tiny-bert", revision=other) == snap_dev


def test_bare_name_falls_back_to_sentence_transformers_org(cache: Path) -> None:
    snapshot = make_cached_repo(cache, "sentence-transformers/all-MiniLM-L6-v2", {
        "modules.json": b"[]", "config.json": b"{}", "model.safetensors": b"w"})
    assert resolve_model_dir("all-MiniLM-L6-v2") == snapshot


def test_local_folder_wins_over_a_cached_id(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_cached_repo(cache, "org/tiny-bert", CHECKPOINT_FILES)
    local = tmp_path / "work" / "org" / "tiny-bert"
    local.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    assert resolve_model_dir("org/tiny-bert").resolve() == local.resolve()


def test_offline_miss_names_the_id_and_the_fix(cache: Path) -> None:
    with pytest.raises(CheckpointError) as err:
        resolve_model_dir("org/not-cached")
    message = str(err.value)
    assert "org/not-cached" in message and "HF_HUB_OFFLINE" in message and "hf download" in message


def test_cached_config_without_weights_is_not_enough(cache: Path) -> None:
    make_cached_repo(cache, "org/partial", {"config.json": b"{}"})
    with pytest.raises(CheckpointError, match="org/partial"):
        resolve_model_dir("org/partial")


def test_missing_path_and_file_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_model_dir(tmp_path / "nope" / "deeper" / "still")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="is a file"):
        resolve_model_dir(weights)


def test_from_pretrained_with_a_cached_hub_id(cache: Path, tmp_path: Path) -> None:
    import bertzoo

    model = bertzoo.build({"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                           "intermediate_size": 20, "max_position_embeddings": 32})
    model.save_pretrained(tmp_path / "saved")
    make_cached_repo(cache, "org/tiny-bert", {p.name: p.read_bytes() for p in (tmp_path / "saved").iterdir()})
    loaded = bertzoo.from_pretrained("org/tiny-bert")
    assert loaded.load_report.clean and loaded.spec.hidden_size == 16
    with pytest.raises(CheckpointError, match="org/other"):
        bertzoo.from_pretrained("org/other")
