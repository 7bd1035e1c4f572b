"""Checks on where results go, made before any work: never replace an input, never find out late.

- :func:`check_output_file`: a single-file output (``--output x.npy`` / ``x.jsonl``) must not be
  an input (same file by device and inode, so a symlink or hard link to it counts), and its
  folder must exist and be writable (a real probe file, so read-only mounts are caught too),
  all before the first text is embedded.
- :func:`check_folder_output`: a shard folder must not be an input, nor hold one (its files are
  created, replaced and cleaned up by the run).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from bertzoo._fs import temporary_name
from bertzoo.errors import InputError

PathLike = str | os.PathLike[str]


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether ``a`` and ``b`` are one file (same device and inode, symlinks followed); False if either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _named_inputs(inputs: Iterable[PathLike | None]) -> list[PathLike]:
    return [p for p in inputs if p is not None and str(p) != "-"]


def _check_not_input(target: PathLike, inputs: Iterable[PathLike | None], what: str) -> None:
    for source in _named_inputs(inputs):
        if same_file(target, source):
            raise InputError(f"{what} {str(target)!r} is the input file {str(source)!r} (the same file, through a "
                             "symlink or link if the names differ): writing it would destroy the input; "
                             "write to another path")


def check_output_file(path: PathLike | None, *, inputs: Iterable[PathLike | None] = (), what: str = "--output",
                      ) -> None:
    """Refuse, before any work, a single-file output that would replace an input or cannot be written.

    ``None`` and ``"-"`` (stdout) pass. A symlink is judged by what it points to, as the atomic
    write (:func:`bertzoo._fs.atomic_write`) replaces that.

    Raises:
        InputError: ``path`` is one of ``inputs`` (by inode), a folder, or in a folder that is
            missing or not writable.
    """
    if path is None or str(path) == "-":
        return
    target = Path(path)
    _check_not_input(target, inputs, what)
    if target.is_dir():
        raise InputError(f"{what} {str(target)!r} is a folder; give a file path")
    if target.exists() and not target.is_file():  # a device or a pipe would be replaced by the rename
        raise InputError(f"{what} {str(target)!r} is not a regular file (a device, pipe or socket); the atomic "
                         "write would replace it: give a file path, or '-' for stdout")
    folder = Path(os.path.realpath(target)).parent
    if not folder.is_dir():
        raise InputError(f"the folder of {what} {str(target)!r} ({str(folder)!r}) does not exist; create it first")
    probe = temporary_name(Path(folder) / target.name)
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"cannot write {what} {str(target)!r}: its folder {str(folder)!r} is not writable "
                         f"({exc.strerror or exc}); choose another folder or fix its permissions") from None


def check_folder_output(folder: PathLike, *, inputs: Iterable[PathLike | None] = ()) -> None:
    """Refuse a shard folder that is an input file, or that holds one (by inode, symlinks followed).

    Raises:
        InputError: naming the input.
    """
    root = Path(folder)
    _check_not_input(root, inputs, "--output")
    if not root.is_dir():
        return  # a new folder holds nothing yet
    for source in _named_inputs(inputs):
        if same_file(Path(os.path.realpath(source)).parent, root):
            raise InputError(f"--input {str(source)!r} is inside the --output folder {str(root)!r}, where the run "
                             "creates, replaces and cleans up files; move the input or choose another folder")


__all__ = ["check_folder_output", "check_output_file", "same_file"]
