"""One writer per output folder: an OS file lock held for the whole run.

Two ``bertzoo embed --output DIR/`` runs on one folder would interleave their shards and
manifests. :class:`FolderLock` takes an exclusive, non-blocking ``flock`` on ``DIR/.bertzoo.lock``
(the file holds the owner's pid) before the folder is read or written, ``--resume`` included;
a second run is refused at once with the holder's pid. The OS drops the lock when its process
dies, however it dies, so a killed run never leaves a stale lock: the file it leaves is taken
over by the next run. A run that ends removes the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path
from types import TracebackType

from bertzoo.errors import BertzooError, InputError

LOCK_NAME = ".bertzoo.lock"


class FolderLockedError(BertzooError):
    """Another process holds the output folder's lock."""


def _try_lock(fd: int) -> bool:
    """Exclusive and non-blocking; False when another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            return False
        raise
    return True


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(fd, 32, 0).split()[0])
        return f"pid {pid}"
    return "pid unknown: it is still starting"


class FolderLock:
    """The exclusive lock on ``folder`` (which must exist); a context manager.

    Raises (from :meth:`acquire`):
        FolderLockedError: another process holds it, naming its pid.
        InputError: the lock file cannot be created (a read-only folder).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as exc:
                raise InputError(f"cannot write in --output folder {str(self.folder)!r} ({exc.strerror or exc}); "
                                 "check its permissions, or choose another folder") from None
            if not _try_lock(fd):
                holder = _holder(fd)
                os.close(fd)
                raise FolderLockedError(
                    f"--output {str(self.folder)!r} is being written by another bertzoo run ({holder}); two runs "
                    "in one folder would mix their shards: wait for it to finish (or stop it), then run again "
                    "(with --resume to continue its work), or choose another folder"
                )
            # the previous holder may have removed the file between our open and our lock: lock the new one
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            mine = os.fstat(fd)
            if current is not None and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file, then unlock (in that order: see :meth:`acquire`'s re-check)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)  # closing drops the lock
        self._fd = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


__all__ = ["LOCK_NAME", "FolderLock", "FolderLockedError"]
