"""Where a checkpoint lives: a local folder, or a HuggingFace Hub id resolved cache first.

``resolve_model_dir("path/or/org-name")`` returns a folder holding ``config.json`` (or a
sentence-transformers ``modules.json``) and the weights. A local folder always wins. A hub id
is looked up in the local HF cache first (no network), and downloaded with
``huggingface_hub.snapshot_download`` only when the cache lacks it and ``HF_HUB_OFFLINE`` is
not set. Environment variables (``HF_HUB_CACHE``, ``HF_HOME``, ``HF_HUB_OFFLINE``) are read at
call time, not when huggingface_hub was imported, so a process can change them.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from bertzoo._fs import recover_folder
from bertzoo.errors import CheckpointError

logger = logging.getLogger(__name__)

# Files a BERT checkpoint folder may need (fnmatch patterns: "*" also matches "/", so
# "*config.json" covers 1_Pooling/config.json and a 0_Transformer/ subfolder).
HUB_PATTERNS: tuple[str, ...] = (
    "*config.json",  # config.json, tokenizer_config.json, 1_Pooling/config.json, sentence_bert_config.json, ...
    "modules.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "*vocab.txt",
    "*tokenizer.json",
    "*special_tokens_map.json",
)
PICKLE_PATTERNS: tuple[str, ...] = ("*pytorch_model.bin", "*pytorch_model*.bin", "*pytorch_model.bin.index.json")

# "name" or "org/name" as the Hub spells repo ids
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_TRUE = {"1", "true", "yes", "on"}


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as set now."""
    if any(os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - a dependency
        return False
    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> Path:
    """The HF hub cache as the environment says now (reference §9.2)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "huggingface" / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def looks_like_hub_id(text: str) -> bool:
    return bool(_HUB_ID_RE.match(text)) and not text.startswith((".", "~")) and ".." not in text


def has_checkpoint(folder: Path) -> bool:
    """A folder a checkpoint can be read from: a config or a sentence-transformers module list."""
    return (folder / "config.json").is_file() or (folder / "modules.json").is_file()


def resolve_model_dir(path_or_id: str | os.PathLike[str], revision: str | None = None, *,
                      allow_pickle: bool = False) -> Path:
    """The local folder of a checkpoint.

    Args:
        path_or_id: a local folder, or a hub id (``"org/name"``; a bare ``"name"`` also tries
            ``sentence-transformers/name``, as sentence-transformers does).
        revision: branch, tag or commit for hub ids (default ``main``); ignored for folders.
        allow_pickle: also fetch ``pytorch_model.bin`` files.

    A local folder a killed save left half swapped is recovered first
    (:func:`bertzoo._fs.recover_folder`, logged).

    Raises:
        CheckpointError: the path is not a checkpoint folder, or the id is not in the cache and
            cannot be downloaded (offline, unknown repo, network failure) — with the fix.
    """
    text = os.fspath(path_or_id)
    local = Path(text).expanduser()
    _recover(local)
    if local.is_dir():
        if revision is not None:
            logger.info("revision=%r ignored: %s is a local folder", revision, local)
        return local
    if local.is_file():
        raise CheckpointError(
            f"{text!r} is a file; from_pretrained takes the folder holding config.json and the weights "
            f"(here: {str(local.parent)!r})"
        )
    if not looks_like_hub_id(text) or text.count("/") > 1:
        raise CheckpointError(
            f"checkpoint folder {text!r} does not exist (and is not a hub id like 'org/name'); "
            "check the path, or give a HuggingFace Hub id"
        )
    candidates = [text] if "/" in text else [text, f"sentence-transformers/{text}"]
    patterns = list(HUB_PATTERNS) + (list(PICKLE_PATTERNS) if allow_pickle else [])
    cache = hub_cache_dir()
    for repo_id in candidates:
        found = _from_cache(repo_id, revision, patterns, cache)
        if found is not None:
            logger.info("resolved %s@%s from the HF cache: %s", repo_id, revision or "main", found)
            return found
    where = f"in the HF cache {str(cache)!r}"
    rev = f" (revision {revision!r})" if revision else ""
    if is_offline():
        raise CheckpointError(
            f"hub id {text!r}{rev} is not {where} and HF_HUB_OFFLINE is set, so it cannot be downloaded; "
            f"download it once online (`hf download {text}`), "
            "unset HF_HUB_OFFLINE, or give a local folder"
        )
    return _download(candidates, revision, patterns, cache)


def _recover(folder: Path) -> None:
    """Finish or roll back a save of ``folder`` that a kill interrupted (it may be missing because of it)."""
    try:
        recover_folder(folder)
    except OSError as exc:  # a read-only parent: load what is there, say why nothing was repaired
        logger.warning("could not recover an interrupted save of %s (%s); loading what is there", folder, exc)


def _from_cache(repo_id: str, revision: str | None, patterns: list[str], cache: Path) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        folder = Path(
            snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=True,
                              allow_patterns=patterns)  # type: ignore[arg-type]
        )
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError, ValueError):
        return None
    # A snapshot holding only some files (say config.json from an earlier probe) is not enough.
    if not has_checkpoint(folder) or not _has_weights(folder):
        logger.info("HF cache has %s but without config and weights; not using it", folder)
        return None
    return folder


def _has_weights(folder: Path) -> bool:
    # the weights may sit in a sentence-transformers Transformer subfolder
    return any(folder.glob("*.safetensors")) or any(folder.glob("*/*.safetensors")) or any(
        folder.glob("pytorch_model*.bin")) or any(folder.glob("*/pytorch_model*.bin"))


def _download(candidates: list[str], revision: str | None, patterns: list[str], cache: Path) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    last: Exception | None = None
    for repo_id in candidates:
        try:
            folder = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache,
                                            allow_patterns=patterns))  # type: ignore[arg-type]
        except RepositoryNotFoundError as exc:
            last = exc
            continue
        except RevisionNotFoundError as exc:
            raise CheckpointError(
                f"hub id {repo_id!r} has no revision {revision!r}; give an existing branch, tag or commit"
            ) from exc
        except Exception as exc:  # network, auth, disk: one message with the fix
            raise CheckpointError(
                f"downloading {repo_id!r} from the HuggingFace Hub failed ({type(exc).__name__}: {exc}); "
                "check the network and the id (private repos need `hf auth login`), or give a local folder"
            ) from exc
        logger.info("downloaded %s to %s", repo_id, folder)
        return folder
    raise CheckpointError(
        f"hub id {candidates[0]!r} was not found on the HuggingFace Hub"
        + (f" (nor {candidates[1]!r})" if len(candidates) > 1 else "")
        + "; check the spelling (org/name), log in for private repos (`hf auth login`), or give a local folder"
    ) from last


__all__ = ["HUB_PATTERNS", "PICKLE_PATTERNS", "has_checkpoint", "hub_cache_dir", "is_offline", "looks_like_hub_id",
           "resolve_model_dir"]
