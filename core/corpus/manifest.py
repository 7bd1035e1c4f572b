"""``manifest.json`` of a shard folder: what was run, on what, how far it got; fingerprints and resume checks.

The manifest is rewritten atomically after every shard, so it only ever lists complete shards.
A resumed run must match what the manifest records: the model's bytes (sha256 over its config,
tokenizer and weight files), every option, and the input's format, field, size and sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from bertzoo._fs import atomic_write_text, is_temporary
from bertzoo.corpus.lock import LOCK_NAME
from bertzoo.errors import InputError
from bertzoo.inference.truncation import TruncationTally

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
SHARD_PREFIX = "shard-"
_HASH_BLOCK = 1 << 20
_MODEL_FILE_SUFFIXES = (".json", ".txt", ".safetensors", ".bin", ".model")
# bertzoo 0.1 recorded dtype / quantize, and embedded through this head only
_LEGACY_HEAD = "bertzoo:sentence-embedding"


def file_digest(path: str | os.PathLike[str]) -> tuple[str, int]:
    """``("sha256:<hex>", size in bytes)`` of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
            size += len(block)
    return "sha256:" + h.hexdigest(), size


def model_fingerprint(folder: str | os.PathLike[str]) -> str:
    """sha256 over a model folder's config, tokenizer and weight files (names and bytes)."""
    root = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
                       and p.suffix in _MODEL_FILE_SUFFIXES):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(file_digest(path)[0].encode() + b"\0")
    return "sha256:" + h.hexdigest()


def now() -> str:
    """Local time as the manifest's ``timing`` records it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def new_manifest(*, model: dict[str, Any], options: dict[str, Any], source: dict[str, Any],
                 output: dict[str, Any], policy: str, max_length: int) -> dict[str, Any]:
    """The manifest of a run that has written nothing yet."""
    return {
        "bertzoo_manifest": MANIFEST_VERSION, "model": model, "options": options, "input": source,
        "output": output, "shards": [], "rows_done": 0, "complete": False,
        "truncation": {"policy": policy, "max_length": max_length, "truncated": 0, "longest": 0, "tokens": 0,
                       "summary": None},
        "timing": {"started": now(), "finished": None, "seconds": 0.0, "runs": 0},
    }


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a shard folder.

    Raises:
        InputError: no manifest, or one that cannot be read.
    """
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{str(folder)!r} holds no {MANIFEST}; is it an output folder of `bertzoo embed`?") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {str(path)!r} ({exc}); remove the folder and run again") from None
    if not isinstance(data, dict) or data.get("bertzoo_manifest") != MANIFEST_VERSION:
        raise InputError(f"{str(path)!r} is not a bertzoo manifest of version {MANIFEST_VERSION}")
    problem = _schema_problem(data, _REQUIRED, "") or next(
        (p for i, shard in enumerate(data["shards"]) if (p := _schema_problem(shard, _SHARD, f"shards[{i}]."))), None)
    if problem:
        raise InputError(f"{str(path)!r} is damaged: {problem} (edited by hand, or written by another program?); "
                         "restore it, or run again in a new folder")
    return data


# What runs and load_folder read back from a manifest: key -> type, or a table for a nested mapping.
_REQUIRED: dict[str, Any] = {
    "model": {"folder": str, "fingerprint": str}, "options": {"format": str, "precision": str}, "input": dict,
    "output": {"dimension": int, "dtype": str, "stored_width": int}, "shards": list, "rows_done": int,
    "complete": bool, "truncation": {"policy": str, "max_length": int}, "timing": {"seconds": (int, float),
                                                                                    "runs": int},
}
_SHARD: dict[str, Any] = {"index": int, "rows": list, "count": int, "files": dict,
                          "input_end": {"offset": int, "line": int}, "tokens": int, "longest": int,
                          "over_max_length": int}


def _schema_problem(data: Any, table: dict[str, Any], where: str) -> str | None:
    """The first key of ``table`` that ``data`` lacks or holds with the wrong type, as a phrase; None if all fit."""
    if not isinstance(data, dict):
        return f"{where.rstrip('.') or 'the manifest'} is not a mapping"
    for key, expected in table.items():
        if key not in data:
            return f"the key {where + key!r} is missing"
        if isinstance(expected, dict):
            problem = _schema_problem(data[key], expected, f"{where}{key}.")
            if problem:
                return problem
        elif not isinstance(data[key], expected):
            return f"{where + key!r} is {type(data[key]).__name__}, not {getattr(expected, '__name__', 'a number')}"
    return None


def check_shards_present(root: Path, manifest: dict[str, Any]) -> None:
    """Refuse to resume a folder whose manifest lists a shard file that is gone or has another size
    (a cheap check: ``load_folder`` compares every digest).

    Raises:
        InputError: naming the file.
    """
    for shard in manifest["shards"]:
        for entry in shard["files"].values():
            name = entry.get("name") if isinstance(entry, dict) else None
            path = root / str(name)
            if not name or not path.is_file():
                raise InputError(
                    f"cannot --resume in {str(root)!r}: {name or 'a file'} of shard {shard['index']}, listed in its "
                    f"{MANIFEST}, is missing (deleted or moved?); put it back, or run again in a new folder")
            if entry.get("bytes") is not None and path.stat().st_size != entry["bytes"]:
                raise InputError(
                    f"cannot --resume in {str(root)!r}: {name} is {path.stat().st_size:,} bytes but its {MANIFEST} "
                    f"records {entry['bytes']:,} (cut short or replaced?); put the original back, or run again in a "
                    "new folder")


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Replace the folder's manifest atomically (a crash leaves the old one or the new one)."""
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def tally(manifest: dict[str, Any]) -> None:
    """Update the manifest's ``truncation`` block from its shards (the shared truncation tally)."""
    shards = manifest["shards"]
    t = manifest["truncation"]
    counts = TruncationTally(t["policy"], t["max_length"])
    counts.add(sum(s["over_max_length"] for s in shards), manifest["rows_done"])
    t["truncated"] = counts.truncated
    t["tokens"] = sum(s["tokens"] for s in shards)
    t["longest"] = max((s["longest"] for s in shards), default=0)
    t["summary"] = counts.summary()


def create_folder(root: Path) -> None:
    """Make the output folder if it is missing.

    Raises:
        InputError: ``root`` is a file, its parent is missing, or it cannot be created.
    """
    if root.exists() and not root.is_dir():
        raise InputError(f"--output {str(root)!r} is a file; a folder switches to sharded output: pass a new folder")
    if root.is_dir():
        return
    if not root.parent.is_dir():
        raise InputError(f"the parent folder of --output {str(root)!r} does not exist; create it first")
    try:
        root.mkdir(exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create --output folder {str(root)!r} ({exc.strerror or exc}); check the "
                         "permissions of its parent, or choose another folder") from None


def prepare_folder(root: Path, resume: bool) -> dict[str, Any] | None:
    """The manifest to continue from (None = start afresh); clears stale temporary files on resume.

    Call it holding the folder's lock (:class:`~bertzoo.corpus.lock.FolderLock`), whose file it ignores.

    Raises:
        InputError: ``root`` is a file, its parent is missing, or it holds a run (or anything
            else) and ``resume`` is off.
    """
    create_folder(root)
    names = [p.name for p in root.iterdir() if p.name != LOCK_NAME]
    if not names:
        return None
    if resume:
        for name in names:
            if is_temporary(name):
                (root / name).unlink(missing_ok=True)  # left by a killed run
    if MANIFEST in names:
        manifest = read_manifest(root)
        if not resume:
            raise InputError(
                f"--output {str(root)!r} already holds a run ({manifest['rows_done']:,} rows, "
                f"{'complete' if manifest['complete'] else 'incomplete'}); add --resume to continue it, "
                "or choose an empty folder"
            )
        check_shards_present(root, manifest)
        return manifest
    # on resume, shards a killed run wrote before its first manifest are rewritten
    others = [n for n in names if not is_temporary(n) and not n.startswith(SHARD_PREFIX)] if resume else names
    if others:
        raise InputError(f"--output folder {str(root)!r} is not empty ({', '.join(sorted(others)[:5])}); "
                         "choose an empty or new folder")
    return None


def recorded_options(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's options in today's terms (a bertzoo 0.1 manifest's ``dtype`` / ``quantize`` as ``compute``)."""
    options: dict[str, Any] = manifest["options"]
    if "compute" in options or "dtype" not in options:
        return options
    from bertzoo.inference.precision import precision_name

    upgraded = {"compute": precision_name(dtype=options["dtype"], quantize=options.get("quantize")),
                "head": _LEGACY_HEAD}
    upgraded.update((k, v) for k, v in options.items() if k not in ("dtype", "quantize"))
    return upgraded


def check_resumable(root: Path, manifest: dict[str, Any], model: dict[str, Any], options: dict[str, Any],
                    source: dict[str, Any]) -> None:
    """Refuse to resume a run whose model, options or input differ from what ``manifest`` records.

    Raises:
        InputError: listing every difference.
    """
    differences: list[str] = []
    if manifest["model"]["fingerprint"] != model["fingerprint"]:
        differences.append(f"model {manifest['model']['folder']} (weights {manifest['model']['fingerprint'][:19]}) "
                           f"vs {model['folder']} ({model['fingerprint'][:19]})")
    recorded = recorded_options(manifest)
    for key in sorted(set(options) | set(recorded)):
        if recorded.get(key) != options.get(key):
            differences.append(f"{key} {recorded.get(key)!r} vs {options.get(key)!r}")
    for key in ("format", "field", "bytes", "sha256"):
        if manifest["input"].get(key) != source.get(key):
            differences.append(f"input {key} {manifest['input'].get(key)!r} vs {source.get(key)!r}")
    if differences:
        raise InputError(
            f"cannot --resume in {str(root)!r}: this run differs from the one its manifest records "
            f"({'; '.join(differences)}); re-run with the same model, options and input, or use a new folder"
        )


__all__ = ["MANIFEST", "MANIFEST_VERSION", "SHARD_PREFIX", "check_resumable", "check_shards_present", "create_folder", "file_digest", "model_fingerprint",
           "new_manifest", "now", "prepare_folder", "read_manifest", "recorded_options", "tally",
           "write_manifest"]
