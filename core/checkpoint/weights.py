"""Weight files: which files a folder's weights are in (single file or shards), and reading them.

Pickle files (``pytorch_model.bin``, or any shard that is not ``.safetensors``) can run code when
loaded: they are refused on every route unless the caller opts in (``allow_pickle=True``), and
then read with ``torch.load(weights_only=True)`` on a torch without the known ``weights_only``
bypass (2.6 or newer, CVE-2025-32434). Every shard an index names must lie inside the folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from bertzoo.checkpoint.layout import (
    PICKLE_INDEX,
    PICKLE_WEIGHTS,
    SAFE_INDEX,
    SAFE_WEIGHTS,
    contained_path,
    read_json,
    short_list,
)
from bertzoo.errors import CheckpointError

# torch.load(weights_only=True) could be made to run code before this release (CVE-2025-32434)
SAFE_TORCH_LOAD = (2, 6)
SAFE_SUFFIX = ".safetensors"


def weight_files(folder: Path, *, allow_pickle: bool = False) -> list[Path]:
    """The weight files of a folder, in transformers' priority order (reference §2.5).

    Raises:
        CheckpointError: no weights; only pickle weights without ``allow_pickle``; a shard
            named by an index that is not there, lies outside the folder, or is not
            ``.safetensors`` without ``allow_pickle``.
    """
    if (folder / SAFE_WEIGHTS).is_file():
        return [folder / SAFE_WEIGHTS]
    if (folder / SAFE_INDEX).is_file():
        return _shards(folder, SAFE_INDEX, allow_pickle)
    pickles = [name for name in (PICKLE_WEIGHTS, PICKLE_INDEX) if (folder / name).is_file()]
    if pickles and not allow_pickle:
        raise CheckpointError(
            f"{str(folder)!r} holds only pickle weights ({', '.join(pickles)}), which can run code when "
            "loaded; pass allow_pickle=True to load them with torch.load(weights_only=True), or convert "
            "once: bertzoo.from_pretrained(folder, allow_pickle=True).save_pretrained(new_folder)"
        )
    if (folder / PICKLE_WEIGHTS).is_file():
        return [folder / PICKLE_WEIGHTS]
    if (folder / PICKLE_INDEX).is_file():
        return _shards(folder, PICKLE_INDEX, allow_pickle)
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    raise CheckpointError(
        f"{str(folder)!r} has no weights: expected {SAFE_WEIGHTS} or {SAFE_INDEX}"
        f"{'' if not allow_pickle else f' (or {PICKLE_WEIGHTS})'}; found {', '.join(present) or 'nothing'}. "
        "Save a model there with save_pretrained, or point at the folder that holds the weights"
    )


def _shards(folder: Path, index_name: str, allow_pickle: bool) -> list[Path]:
    index = read_json(folder / index_name)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{str(folder / index_name)!r} has no weight_map; re-download or re-save the checkpoint")
    names = sorted(set(map(str, weight_map.values())))
    files = [contained_path(folder, name, f"{str(folder / index_name)!r} entry") for name in names]
    pickles = [name for name in names if not name.endswith(SAFE_SUFFIX)]
    if pickles and not allow_pickle:
        raise CheckpointError(
            f"{str(folder / index_name)!r} names shards that are not safetensors files ({short_list(pickles)}); "
            "they would be read with torch.load, which can run code: pass allow_pickle=True only if you trust "
            "the checkpoint, or fix the index to name .safetensors shards"
        )
    absent = [p.name for p in files if not p.is_file()]
    if absent:
        raise CheckpointError(
            f"{str(folder / index_name)!r} names shards that are not in the folder: {', '.join(absent)}; "
            "the download is incomplete: download the checkpoint again"
        )
    return files


def read_state_dict(files: Iterable[Path], *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read tensors from safetensors (or, with ``allow_pickle``, pickle ``.bin``) files onto the CPU.

    Raises:
        CheckpointError: a truncated or corrupted file (named, with the fix); a key that two
            shards both hold; a file that is not safetensors without ``allow_pickle``, or with it
            on a torch older than 2.6.
    """
    files = list(files)
    pickles = [repr(str(path)) for path in files if path.suffix != SAFE_SUFFIX]
    if pickles and not allow_pickle:
        raise CheckpointError(
            f"{short_list(pickles)} {'is not a safetensors file' if len(pickles) == 1 else 'are not safetensors files'}"
            "; torch.load on it can run code: pass allow_pickle=True only if you trust it, or convert it to safetensors"
        )
    if pickles:
        check_torch_for_pickle()
    state: dict[str, torch.Tensor] = {}
    for path in files:
        part = _read_safetensors(path) if path.suffix == SAFE_SUFFIX else _read_pickle(path)
        clash = state.keys() & part.keys()
        if clash:
            raise CheckpointError(f"{str(path)!r} repeats keys of another shard ({short_list(sorted(clash))}); "
                                  "the checkpoint is inconsistent: re-save or re-download it")
        state.update(part)
    return state


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:  # type: ignore[no-untyped-call]
            return {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as exc:  # safetensors raises its own SafetensorError, or OSError / RuntimeError
        raise CheckpointError(
            f"{str(path)!r} is not a readable safetensors file ({type(exc).__name__}: {exc}); it is probably "
            "truncated or corrupted (an interrupted download or copy): delete it and download it again "
            "(`hf download <repo> --force-download`), or save the model again"
        ) from None


_FLOAT_CODES = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "BF16": "<u2"}  # safetensors dtype -> numpy
_BF16_EXPONENT = 0x7F80  # all exponent bits set: Inf or NaN
_SCAN_BLOCK = 8 << 20


def scan_non_finite(path: Path) -> list[str]:
    """Keys of a safetensors file whose floating values include NaN or Inf.

    Reads the file in blocks into one reused buffer instead of touching its memory map, so the
    check costs page cache, not the process's resident memory (the weights are mapped lazily and
    a forward touches only what it uses, e.g. the embedding rows of the tokens it sees).

    Raises:
        CheckpointError: a header that is not safetensors' (the file is truncated or corrupted).
    """
    bad: list[str] = []
    buffer = bytearray(_SCAN_BLOCK)
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
            base = 8 + size
            for key, info in header.items():
                code = _FLOAT_CODES.get(info.get("dtype", "")) if key != "__metadata__" else None
                if code is None:
                    continue
                start, end = info["data_offsets"]
                f.seek(base + start)
                remaining = end - start
                while remaining > 0:
                    view = memoryview(buffer)[:min(remaining, _SCAN_BLOCK)]
                    got = f.readinto(view)
                    if not got:
                        raise ValueError(f"the data of {key!r} ends early")
                    if not _block_finite(np.frombuffer(view[:got], dtype=code), code):
                        bad.append(key)
                        break
                    remaining -= got
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file ({exc}); it is probably truncated "
                              "or corrupted: delete it and download or save it again") from None
    return bad


def _block_finite(array: np.ndarray, code: str) -> bool:
    if code == "<u2":  # bfloat16 bits
        return not bool(np.any((array & _BF16_EXPONENT) == _BF16_EXPONENT))
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum is an answer, not an error
        total = array.sum(dtype=np.float64 if code == "<f8" else np.float32)
    return bool(np.isfinite(total)) or bool(np.isfinite(array).all())


def check_torch_for_pickle() -> None:
    """Refuse to read pickles on a torch whose ``weights_only`` loader can be made to run code.

    Raises:
        CheckpointError: torch older than 2.6 (or a version string that does not say).
    """
    version = str(torch.__version__)
    found = re.match(r"(\d+)\.(\d+)", version)
    if found is None or (int(found[1]), int(found[2])) < SAFE_TORCH_LOAD:
        floor = ".".join(map(str, SAFE_TORCH_LOAD))
        raise CheckpointError(
            f"allow_pickle=True needs torch >= {floor} (this is torch {version}): older torch.load(weights_only=True) "
            f"can be made to run code (CVE-2025-32434); upgrade torch (pip install 'torch>={floor}'), or convert the "
            "checkpoint to safetensors once on a machine that has it"
        )


def _read_pickle(path: Path) -> dict[str, torch.Tensor]:
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{str(path)!r} could not be read with torch.load(weights_only=True) ({type(exc).__name__}: {exc}); "
            "it is truncated, corrupted or holds more than tensors: download it again or convert it to safetensors"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{str(path)!r} does not hold a state dict of tensors; it is not a model checkpoint")
    return dict(data)


__all__ = ["SAFE_TORCH_LOAD", "check_torch_for_pickle", "read_state_dict", "scan_non_finite", "weight_files"]
