"""The ``bertzoo`` command line: :func:`main`, the parser, and sub-commands from plugins.

Each built-in sub-command lives in its own module (:data:`COMMAND_MODULES`), which defines
``add_parser(subparsers)``; importing one stays light (no torch), so ``bertzoo list`` and
``bertzoo plugins`` answer without importing torch. Plugins add sub-commands through the
``bertzoo_register_commands(subparsers)`` hook; a plugin whose hook fails loses its commands
(``bertzoo plugins`` shows why) and the rest of the CLI works.

User errors print one line on stderr and exit 2; so do the environment's failures (read-only or
full disk, out of memory) and a plugin raising (named): see :mod:`bertzoo.cli._errors`.
``--debug`` (or ``BERTZOO_DEBUG=1``) shows the traceback. A bug in bertzoo keeps its traceback.
``--quiet`` (before or after the command) leaves only errors on stderr; ``--version`` prints
bertzoo's version and torch's without importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any

from bertzoo.cli._common import quiet_output
from bertzoo.cli._errors import explain, one_line, print_error
from bertzoo.cli.build import parse_set
from bertzoo.errors import BertzooError, PluginError

COMMANDS_HOOK = "bertzoo_register_commands"

# In the order `bertzoo --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "bertzoo.cli.list_cmd",
    "bertzoo.cli.plugins_cmd",
    "bertzoo.cli.build",
    "bertzoo.cli.spec",
    "bertzoo.cli.verify",
    "bertzoo.cli.embed",
    "bertzoo.cli.classify",
    "bertzoo.cli.fill_mask",
    "bertzoo.cli.similarity",
    "bertzoo.cli.rerank",
    "bertzoo.cli.token_classify",
    "bertzoo.cli.answer",
    "bertzoo.cli.info",
    "bertzoo.cli.serve",
    "bertzoo.cli.train",
)


def version_text() -> str:
    """``bertzoo X (torch Y, Python Z)``, read from the installed distributions (torch is not imported)."""
    from importlib import metadata

    import bertzoo

    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "not installed"
    return f"bertzoo {bertzoo.__version__} (torch {torch_version}, Python {sys.version.split()[0]})"


class _VersionAction(argparse.Action):
    """``--version``: the text is built only when asked (argparse's own action needs it up front)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(version_text())
        parser.exit()


QUIET_HELP = "errors only on stderr: no progress bars, load reports, warnings or informational lines"


def add_quiet_options(subparsers: Any) -> None:
    """``--quiet`` / ``-q`` on every sub-command that lacks it (a plugin's own option stays as it is).

    Its default is left unset so ``bertzoo --quiet COMMAND`` is not overridden by the sub-command's.
    """
    for parser in dict.fromkeys(subparsers._name_parser_map.values()):
        for flags in (("--quiet", "-q"), ("--quiet",)):
            try:
                parser.add_argument(*flags, action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
                break
            except argparse.ArgumentError:  # the command already has -q (or --quiet)
                continue


def add_plugin_commands(subparsers: Any, host: Any) -> None:
    """Run every loaded plugin's command hook on ``subparsers``, one plugin at a time.

    A hook that raises, or that takes a name already in use, has whatever it added removed and
    its error recorded on its plugin (``bertzoo plugins`` shows it).
    """
    # argparse has no public way to remove a sub-parser, so each hook's additions are undone by
    # restoring the two containers add_parser() appends to.
    names: dict[str, Any] = subparsers._name_parser_map
    listed: list[Any] = subparsers._choices_actions
    for info, call in host.hook_functions(COMMANDS_HOOK):
        before, n_listed = dict(names), len(listed)
        try:
            call(subparsers=subparsers)
            taken = sorted(name for name, parser in before.items() if names.get(name) is not parser)
            if taken:
                raise PluginError(f"plugin {info.name!r} adds command(s) {', '.join(taken)}, a name already taken; "
                                  "rename them")
        except (Exception, SystemExit) as exc:  # argparse raises ArgumentError on a conflicting name
            names.clear()
            names.update(before)
            del listed[n_listed:]
            host.record_hook_failure(info, COMMANDS_HOOK, exc)
            continue
        info.commands = [name for name in names if name not in before]


def make_parser(host: Any = None, *, plugins: bool = True) -> argparse.ArgumentParser:
    """The ``bertzoo`` parser: the built-in sub-commands, then those of the plugins of ``host``.

    Args:
        host: the :class:`~bertzoo.discovery.PluginHost` whose plugins add commands (default: the
            process-wide one, which loads the installed plugins).
        plugins: False for the built-in commands only.

    Raises:
        PluginError: a plugin failed to load under ``BERTZOO_STRICT_PLUGINS=1``.
    """
    parser = argparse.ArgumentParser(prog="bertzoo", description="A plugin-based model zoo for the BERT family.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--quiet", "-q", action="store_true", help=QUIET_HELP)
    parser.add_argument("--version", action=_VersionAction, help="print bertzoo's version and torch's, and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    if plugins:
        if host is None:
            from bertzoo.discovery import get_host

            host = get_host()
        add_plugin_commands(sub, host)
    add_quiet_options(sub)
    return parser


def _debug_wanted(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get("BERTZOO_DEBUG", "") not in ("", "0")


def _user_error(message: object, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print_error(str(message))
    return 2


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
    return f"bertzoo: warning: {one_line(str(message))}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bertzoo ARGV`` (default ``sys.argv[1:]``); returns the exit status."""
    shown_as = warnings.formatwarning
    warnings.formatwarning = _one_line_warning  # e.g. discovery's, raised while the parser is built
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    finally:
        warnings.formatwarning = shown_as


def _main(argv: list[str]) -> int:
    try:
        parser = make_parser()
    except BertzooError as exc:  # BERTZOO_STRICT_PLUGINS=1 and a plugin failed
        return _user_error(exc, _debug_wanted(argv))
    args = parser.parse_args(argv)
    debug = args.debug or _debug_wanted([])
    func = getattr(args, "func", None)
    if func is None:
        print(f"bertzoo: error: command {args.command!r} has no handler; its plugin must call "
              "set_defaults(func=...) on its parser", file=sys.stderr)
        return 2
    try:
        with quiet_output(bool(getattr(args, "quiet", False))):
            return int(func(args) or 0)
    except BertzooError as exc:
        return _user_error(exc, debug)
    except KeyboardInterrupt:
        print("bertzoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `bertzoo list | head`
        return 0
    except Exception as exc:  # the environment's or a plugin's failure gets one line; a bug its traceback
        message = explain(exc, args)
        if message is None:
            raise
        return _user_error(message, debug)


__all__ = ["COMMAND_MODULES", "add_plugin_commands", "add_quiet_options", "main", "make_parser", "parse_set",
           "version_text"]
