"""The one line the CLI prints for a failure that is not a bug in bertzoo: what failed, why, what to do.

A :class:`~bertzoo.errors.BertzooError` carries its own message. Failures of the environment and
of plugins get one here (:func:`explain`):

- the file system: read-only, disk full, permissions (``OSError``, and numpy's errno-less short
  write, which is a full disk);
- memory: ``MemoryError``, torch's ``OutOfMemoryError`` and its CPU allocator's failure;
- a plugin's code raising (a component mid-job, or a plugin's command): named from the traceback's
  innermost frame in a third-party plugin's package, as ``kind 'ns:name'`` where the frame's object
  or module is a registered component.

A folder job that fails this way keeps its complete shards, so the line ends with ``--resume``.
Anything else is a bug in bertzoo: :func:`bertzoo.cli.main` lets its traceback through.
"""

from __future__ import annotations

import argparse
import errno
import re
import sys
import traceback
from pathlib import Path
from typing import Any

# torch's CPU allocator raises a bare RuntimeError; CUDA / MPS say "out of memory"
_ALLOCATION_FAILED = re.compile(r"can't allocate memory|out of memory", re.IGNORECASE)
_ALLOCATION_SIZE = re.compile(r"allocate (?:(\d+) bytes|([\d.]+ ?[KMGT]i?B))", re.IGNORECASE)
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")  # numpy's tofile() on a full disk
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NO_PERMISSION = (errno.EACCES, errno.EPERM)


def one_line(text: str) -> str:
    """``text`` with its lines joined: every error the CLI prints is a single line."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def explain(exc: BaseException, args: argparse.Namespace | None) -> str | None:
    """The one-line message for ``exc`` if it is the environment's or a plugin's failure, else None (a bug)."""
    if is_allocation_failure(exc):
        message = _memory(exc, args)
    elif isinstance(exc, OSError):
        message = _file_system(exc, args)
    else:
        culprit = plugin_culprit(exc)
        if culprit is None:
            return None
        message = (f"{culprit} raised {type(exc).__name__}: {one_line(str(exc)) or '(no message)'}; this is the "
                   "plugin's code: report it to its authors, choose another component, or disable the plugin "
                   "(BERTZOO_DISABLE_PLUGINS)")
    return message + _resume_hint(args)


# -- memory ------------------------------------------------------------------------------------------------


def is_allocation_failure(exc: BaseException) -> bool:
    """``MemoryError``, torch's ``OutOfMemoryError``, or torch's allocator failing (a RuntimeError)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return True
    return isinstance(exc, RuntimeError) and bool(_ALLOCATION_FAILED.search(str(exc)))


def _memory(exc: BaseException, args: argparse.Namespace | None) -> str:
    size = _ALLOCATION_SIZE.search(str(exc))
    amount = (f"{int(size.group(1)):,} bytes" if size.group(1) else size.group(2)) if size else None
    tried = f" (it tried to allocate {amount})" if amount else ""
    fixes = ["use a smaller model", "--compute bfloat16 or int8", "free memory"]
    if args is not None and hasattr(args, "batch_tokens"):
        fixes.insert(0, "lower --batch-tokens" + (f" (now {args.batch_tokens})" if args.batch_tokens else ""))
    command = f"`bertzoo {args.command}`" if args is not None and getattr(args, "command", None) else "bertzoo"
    return f"out of memory running {command}{tried}: {', '.join(fixes)}"


# -- file system ------------------------------------------------------------------------------------------


def _file_system(exc: OSError, args: argparse.Namespace | None) -> str:
    output = getattr(args, "output", None)
    if exc.filename is not None:
        where = f" ({exc.filename!r})"
    else:
        where = f" writing --output {output!r}" if output else ""
    if exc.errno in _NO_SPACE or (exc.errno is None and _SHORT_WRITE.search(str(exc))):
        return f"no space left on the device{where}: free some space, or write to another disk"
    if exc.errno == errno.EROFS:
        return f"read-only file system{where}: write to a writable folder"
    if exc.errno in _NO_PERMISSION:
        return f"permission denied{where}: fix the permissions, or use another path"
    return f"{exc.strerror or one_line(str(exc)) or type(exc).__name__}{where}"


# -- plugins ----------------------------------------------------------------------------------------------


def _top(module: str) -> str:
    return module.split(":", 1)[0].split(".", 1)[0]


def plugin_culprit(exc: BaseException) -> str | None:
    """``"head 'ns:name' (plugin 'p')"`` for the innermost traceback frame in a third-party plugin's
    package (``"plugin 'p'"`` when no registered component is that frame's object or module)."""
    try:
        from bertzoo.discovery import get_host

        host = get_host()
    except Exception:  # discovery itself failed: nothing to name
        return None
    plugins = {_top(info.module): info for info in host.plugins.values() if info.status == "loaded" and not info.builtin}
    if not plugins:
        return None
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:  # the exception, then what it was raised from
        seen.add(id(exc))
        for frame, _ in reversed(list(traceback.walk_tb(exc.__traceback__))):
            module = str(frame.f_globals.get("__name__", ""))
            info = plugins.get(_top(module))
            if info is not None:
                return _name_component(host.registry.records(), info, module, frame.f_locals.get("self"))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


def _name_component(records: list[Any], info: Any, module: str, owner: Any) -> str:
    """The registered component of plugin ``info`` that ``owner`` is an instance of, else the only one
    defined in ``module``; else the plugin."""
    mine = [(r, _target(r.target)) for r in records if r.plugin == info.name]
    cls = type(owner) if owner is not None else None
    exact = [r for r, (mod, name) in mine if cls is not None and (mod, name) == (cls.__module__, cls.__qualname__)]
    in_module = [r for r, (mod, _) in mine if mod == module]
    found = exact or (in_module if len(in_module) == 1 else [])
    if found:
        return f"{found[0].kind} {found[0].full_name!r} (plugin {info.name!r})"
    return f"plugin {info.name!r} ({info.distribution or info.module})"


def _target(target: Any) -> tuple[str, str]:
    """``(module, qualified name)`` of a component's target, a ``"module:attr"`` string or the object."""
    if isinstance(target, str):
        module, _, name = target.partition(":")
        return module, name
    return str(getattr(target, "__module__", "")), str(getattr(target, "__qualname__", ""))


# -- folder jobs ------------------------------------------------------------------------------------------


def _resume_hint(args: argparse.Namespace | None) -> str:
    """``; ... --resume ...`` when the failed command was a folder job that can be continued."""
    folder = getattr(args, "resumable_folder", None)
    if folder is None:
        return ""
    try:
        from bertzoo.corpus.manifest import MANIFEST

        started = (Path(folder) / MANIFEST).is_file()
    except Exception:  # e.g. out of memory again while importing
        started = False
    if not started:
        return ""
    return f"; the complete shards in {str(folder)!r} are kept: run the same command with --resume to continue"


def print_error(message: str) -> None:
    print(f"bertzoo: error: {one_line(message)}", file=sys.stderr)


__all__ = ["explain", "is_allocation_failure", "one_line", "plugin_culprit", "print_error"]
