"""Atomic file and folder writes: the one implementation every writer uses.

A reader never sees a half-written file or folder: data goes to a hidden temporary name next to
the target, is flushed and fsynced, renamed into place, and the parent folder is fsynced so the
rename itself survives a crash. On any exception (KeyboardInterrupt included) the temporary is
removed and whatever was at the target before is left as it was. A kill (SIGKILL) can leave
temporaries behind under hidden ``.NAME.tmp-*`` / ``.new-*`` / ``.old-*`` names
(:func:`is_temporary` recognises them); for folders, :func:`recover_folder` (run by the next
:func:`atomic_folder` of the same target, and by checkpoint loading) finishes or rolls back the
interrupted swap and deletes them. A symlinked target stays a symlink: what it points to is
replaced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)


def _tag() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def temporary_name(target: Path) -> Path:
    """A hidden sibling of ``target`` that :func:`is_temporary` recognises."""
    return target.parent / f".{target.name}.tmp-{_tag()}"


def is_temporary(name: str) -> bool:
    """Whether a file or folder name is one of our temporaries (left behind by a kill)."""
    return name.startswith(".") and any(marker in name for marker in (".tmp-", ".new-", ".old-"))


def fsync_folder(folder: Path) -> None:
    """Make renames and creations inside ``folder`` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Write ``path`` through ``write(fileobj)``: temporary file, fsync, rename, fsync the folder.

    Returns:
        The path written (as given: a symlink stays one, the file it points to is replaced).
    """
    requested = Path(path)
    target = _follow_link(requested)
    tmp = temporary_name(target)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(target.parent)
    return requested


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """:func:`atomic_write` of a bytes value."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_tree(root: Path) -> None:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                fd = os.open(Path(folder) / name, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        fsync_folder(Path(folder))


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a folder in a temporary sibling, then swap it into place, recoverably.

    ``with atomic_folder(target) as tmp: ...write into tmp...``. Steps, each a rename made durable
    by fsyncing the parent: the finished ``.NAME.tmp-T`` becomes ``.NAME.new-T`` (complete),
    ``target`` moves to ``.NAME.old-T``, ``.NAME.new-T`` becomes ``target``, the old folder is
    removed. A kill between any two steps leaves a state :func:`recover_folder` (run first by the
    next save or load of ``target``) finishes or rolls back. On an exception inside the block the
    temporary is removed and ``target`` is untouched. A symlinked ``target`` stays a link: the
    folder it points to is replaced.
    """
    target = _follow_link(Path(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        recover_folder(target)
    except OSError as exc:  # a leftover we may not touch must not stop this save
        logger.warning("%s: could not recover an interrupted save (%s); saving anyway", target, exc)
    tag = _tag()
    tmp = _sibling(target, "tmp", tag)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    ready = _sibling(target, "new", tag)
    os.replace(tmp, ready)  # complete from here on: recovery may swap it in
    fsync_folder(target.parent)
    _swap_into_place(ready, target, tag)


def _swap_into_place(ready: Path, target: Path, tag: str) -> None:
    if not target.exists():
        os.replace(ready, target)
        fsync_folder(target.parent)
        return
    backup = _sibling(target, "old", tag)
    os.replace(target, backup)
    try:
        os.replace(ready, target)
    except BaseException:
        os.replace(backup, target)  # put the old folder back
        shutil.rmtree(ready, ignore_errors=True)
        raise
    fsync_folder(target.parent)  # the swap is durable before the old copy goes
    shutil.rmtree(backup, ignore_errors=True)


# -- recovery from killed saves ---------------------------------------------------------------------
def _follow_link(target: Path) -> Path:
    # a symlinked target keeps its link: write where it points
    return Path(os.path.realpath(target)) if target.is_symlink() else target


def _sibling(target: Path, kind: str, tag: str) -> Path:
    return target.parent / f".{target.name}.{kind}-{tag}"


def _owner_alive(tag: str) -> bool:
    """Whether the process that made a temporary (its pid starts the tag) still runs."""
    pid_text = tag.split("-", 1)[0]
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid() or os.name == "nt":  # our own save in another thread; no cheap probe on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by another user
        return True
    return True


def leftovers(target: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """Temporaries of ``target`` left by saves whose process is gone, by kind: ``tmp`` (unfinished),
    ``new`` (complete, not yet swapped in), ``old`` (the previous folder, moved aside)."""
    folder = Path(target)
    found: dict[str, list[Path]] = {"tmp": [], "new": [], "old": []}
    prefix = f".{folder.name}."
    try:
        entries = [e for e in os.scandir(folder.parent) if e.name.startswith(prefix)]
    except OSError:  # no parent folder (yet): nothing left over
        return found
    for entry in entries:
        kind, sep, tag = entry.name[len(prefix):].partition("-")
        if sep and kind in found and not _owner_alive(tag):
            found[kind].append(Path(entry.path))
    return found


def _newest(paths: list[Path]) -> Path:
    return max(paths, key=lambda p: p.stat().st_mtime_ns)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def recover_folder(path: str | os.PathLike[str]) -> list[str]:
    """Finish or roll back a folder swap a killed save left half done, and delete its temporaries.

    With ``target`` present, it is the truth: leftovers are deleted. With ``target`` missing (the
    kill fell between the two renames), the newest complete new folder is swapped in, else the
    newest old folder is put back. Temporaries of saves still running (their pid is alive) are
    left alone. Every action is logged as a warning.

    Returns:
        What was done, one line per action (empty when nothing was left over).
    """
    target = _follow_link(Path(path))
    found = leftovers(target)
    actions: list[str] = []

    def done(action: str) -> None:  # logged as it happens, so a failure later still leaves the record
        actions.append(action)
        logger.warning("%s: %s", target, action)

    if not any(found.values()):
        return actions
    if not target.exists():
        for kind, verb in (("new", "finished an interrupted save: moved {} into place"),
                           ("old", "rolled back an interrupted save: put the previous folder {} back")):
            if found[kind]:
                chosen = _newest(found[kind])
                os.replace(chosen, target)
                found[kind].remove(chosen)
                done(verb.format(chosen.name))
                break
    for kind in ("tmp", "new", "old"):
        for stale in found[kind]:
            _remove(stale)
            done(f"deleted {stale.name}, left by a killed save")
    fsync_folder(target.parent)
    return actions


__all__ = ["atomic_folder", "atomic_write", "atomic_write_bytes", "atomic_write_text", "fsync_folder",
           "is_temporary", "leftovers", "recover_folder", "temporary_name"]
