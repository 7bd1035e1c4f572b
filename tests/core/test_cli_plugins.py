"""Plugins on the command line: sub-commands from ``bertzoo_register_commands``, and ``bertzoo plugins --check``.

The subprocess tests use real throwaway distributions (``tests/fixtures/command_dists``: a
``*.dist-info`` folder with an entry point, and a module), found on ``PYTHONPATH`` exactly as an
installed plugin is. The in-process tests register plugin objects on a fresh
:class:`~bertzoo.discovery.PluginHost`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bertzoo import InputError
from bertzoo import hookimpl as bertzoo_hookimpl
from bertzoo.cli import add_plugin_commands, make_parser
from bertzoo.discovery import PluginHost

Cli = Callable[..., subprocess.CompletedProcess[str]]
FIXTURES = Path(__file__).parents[1] / "fixtures" / "command_dists"


@pytest.fixture(scope="module")
def command_dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment that puts the fixture plugins on ``PYTHONPATH`` (a copy, so nothing writes in tests/)."""
    root = tmp_path_factory.mktemp("command-dists")
    shutil.copytree(FIXTURES, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return {"PYTHONPATH": str(root)}


def plugin_rows(stdout: str) -> dict[str, str]:
    lines = stdout.strip().splitlines()
    assert lines[0].split() == ["PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "COMPONENTS", "/", "ERROR"]
    return {line.split()[0]: line for line in lines[1:]}


# -- through installed distributions ------------------------------------------------------------------


def test_a_plugin_command_runs_like_a_built_in_one(cli: Cli, command_dists: dict[str, str]) -> None:
    out = cli("hello", "world", "--shout", env=command_dists)
    assert (out.returncode, out.stdout, out.stderr) == (0, "HELLO WORLD\n", "")
    out = cli("hello", " ", env=command_dists)  # its user error: one line, exit 2, like ours
    assert out.returncode == 2 and out.stderr == "bertzoo: error: hello needs a name; e.g. `bertzoo hello world`\n"
    out = cli("--help", env=command_dists)
    assert "hello" in out.stdout and "fixture: greet NAME" in out.stdout
    out = cli("hello", "world")  # not installed: argparse's own usage error
    assert out.returncode == 2 and "invalid choice: 'hello'" in out.stderr


def test_plugins_lists_commands_and_failed_command_hooks(cli: Cli, command_dists: dict[str, str]) -> None:
    out = cli("plugins", env=command_dists)
    assert out.returncode == 0, out.stderr
    rows = plugin_rows(out.stdout)
    assert rows["hello"].split()[1:] == ["bertzoo-hello", "0.2.0", "loaded", "0", "component(s),", "1", "command(s)"]
    # the hook failed: its command is gone, its component stays, the one-line error says why
    assert rows["halfcmd"].split()[3] == "loaded"
    assert ("1 component(s); bertzoo_register_commands failed: RuntimeError: the command hook broke half-way ..."
            in rows["halfcmd"])
    assert "conflicting subparser: embed" in rows["takencmd"]
    assert len(out.stdout.strip().splitlines()) == 1 + len(rows)  # one line per plugin

    plugins = {p["name"]: p for p in json.loads(cli("plugins", "--json", env=command_dists).stdout)}
    assert plugins["hello"]["commands"] == ["hello"] and plugins["hello"]["hook_errors"] == {}
    assert plugins["halfcmd"]["commands"] == [] and plugins["halfcmd"]["components"] == ["preset:halfcmd:half-tiny"]
    assert "second line of the message" in plugins["halfcmd"]["traceback"]
    assert plugins["takencmd"]["commands"] == []

    out = cli("half", env=command_dists)
    assert out.returncode == 2 and "invalid choice: 'half'" in out.stderr
    out = cli("embed", "--help", env=command_dists)  # still bertzoo's embed
    assert out.returncode == 0 and "sentence-embedding model" in out.stdout
    out = cli("list", "preset", "half*", env=command_dists)
    assert out.returncode == 0 and "halfcmd:half-tiny" in out.stdout


def test_a_hook_asking_for_an_unknown_argument_shows_pluggys_reason(cli: Cli, command_dists: dict[str, str]) -> None:
    plugins = {p["name"]: p for p in json.loads(cli("plugins", "--json", env=command_dists).stdout)}
    error = plugins["wrongarg"]["error"]
    assert plugins["wrongarg"]["status"] == "failed" and "\n" not in error
    assert error.startswith("PluginValidationError: Plugin 'wrongarg' for hook 'bertzoo_register_commands'")
    assert "Argument(s) {'cli'} are declared in the hookimpl but can not be found in the hookspec" in error


def test_plugins_check_imports_every_target(cli: Cli, command_dists: dict[str, str]) -> None:
    out = cli("plugins", "--check", env=command_dists, timeout=300)
    assert out.returncode == 1, out.stderr
    rows = {tuple(line.split()[:2]): line for line in out.stdout.strip().splitlines()[1:]}
    assert "No module named 'bzcmd_missing_module'" in rows[("attention", "badtarget:ghost")]
    assert "NotAModel" in rows[("attention", "badtarget:ghost-options")]
    assert "can not be found in the hookspec" in rows[("plugin", "wrongarg")]
    assert "RuntimeError: the command hook broke half-way" in rows[("plugin", "halfcmd")]
    assert not any(name.startswith("bertzoo:") for _, name in rows)  # every built-in imports
    assert out.stderr.strip().endswith(f"{len(rows)} failure(s)")

    report = json.loads(cli("plugins", "--check", "--json", env=command_dists, timeout=300).stdout)
    assert {f["name"] for f in report["failures"]} == {name for _, name in rows}
    assert report["checked"] > 20


def test_plugins_check_passes_on_the_built_ins(cli: Cli) -> None:
    out = cli("plugins", "--check", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout == "" and out.stderr.strip().endswith(": 0 failure(s)")


# -- in process ---------------------------------------------------------------------------------------


class Greeter:
    """Adds ``greet`` (a plugin object, as a notebook or test registers one)."""

    @bertzoo_hookimpl
    def bertzoo_register_commands(self, subparsers: Any) -> None:
        subparsers.add_parser("greet", aliases=["hi"]).set_defaults(func=lambda args: 0)


class TwoThenFail:
    @bertzoo_hookimpl
    def bertzoo_register_commands(self, subparsers: Any) -> None:
        subparsers.add_parser("first")
        subparsers.add_parser("second", help="listed in --help until rolled back")
        raise InputError("no more")


def _subparsers(parser: argparse.ArgumentParser) -> Any:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def test_a_failing_hook_leaves_nothing_behind_and_the_others_work() -> None:
    host = PluginHost()
    host.register_plugin("greeter", Greeter())
    host.register_plugin("twothenfail", TwoThenFail())
    parser = make_parser(plugins=False)
    sub = _subparsers(parser)
    built_in = set(sub.choices)
    add_plugin_commands(sub, host)
    assert set(sub.choices) == built_in | {"greet", "hi"}
    assert "second" not in parser.format_help()  # its help line was rolled back too
    assert host.plugins["greeter"].commands == ["greet", "hi"]
    assert host.plugins["twothenfail"].commands == []
    assert host.plugins["twothenfail"].hook_errors == {"bertzoo_register_commands": "InputError: no more"}
    assert host.plugins["twothenfail"].status == "loaded"
    assert parser.parse_args(["hi"]).func(None) == 0
