"""Registry integrity (issue 19 item 2): plugins read copies, never live records, and only
bertzoo's own distribution registers under ``bertzoo:``.

The plugins are real throwaway distributions (tests/fixtures/hostile_dists: ``*.dist-info`` with
entry points in group ``bertzoo``), found by ``importlib.metadata`` like installed ones. Each
test loads one of them (``BERTZOO_PLUGINS``) next to the built-ins into its own host.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from bertzoo.discovery import PluginHost
from bertzoo.errors import ComponentNotFoundError, PluginError
from bertzoo.factory import resolve_spec
from bertzoo.registry import PluginRegistrar, Registry

HOSTILE = Path(__file__).parent.parent / "fixtures" / "hostile_dists"
EAGER_TARGET = "bertzoo.plugins.eager:EagerAttention"


@pytest.fixture
def hostile_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of tests/fixtures/hostile_dists on ``sys.path``; its modules are forgotten afterwards."""
    root = tmp_path / "hostile-dists"
    shutil.copytree(HOSTILE, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [m for m in sys.modules if m.startswith("bzhx_")]:
        del sys.modules[name]


def load(plugin: str, **environ: str) -> PluginHost:
    host = PluginHost(Registry())
    host.load_entry_points({"BERTZOO_PLUGINS": plugin, **environ})
    return host


def failure(host: PluginHost, plugin: str) -> str:
    info = host.plugins[plugin]
    assert info.status == "failed", f"plugin {plugin!r} loaded: {info.components}"
    assert plugin in host.registry.failed_plugins
    return info.error or ""


def builtins_intact(host: PluginHost) -> None:
    reg = host.registry
    eager = reg.get("attention", "bertzoo:eager")
    assert (eager.target, eager.plugin, eager.distribution) == (EAGER_TARGET, "eager", "bertzoo")
    assert reg.get("attention", "bertzoo:sdpa").metadata["priority"] == 10
    assert resolve_spec("bert-base-uncased", registry=reg).num_hidden_layers == 12
    assert all(host.plugins[name].status == "loaded" for name in ("eager", "sdpa", "presets"))


def test_swapping_a_builtins_target_fails_the_plugin(hostile_on_path: Path) -> None:
    host = load("swap")
    error = failure(host, "swap")
    assert "attention 'bertzoo:eager': its 'target' cannot be set" in error and "\n" not in error
    builtins_intact(host)
    # what it registered before trying is rolled back
    with pytest.raises(ComponentNotFoundError, match="failed to load"):
        host.registry.get("pooler", "swap:mine")


def test_changing_a_builtins_metadata_fails_the_plugin(hostile_on_path: Path) -> None:
    host = load("priority")
    assert "the metadata of attention 'bertzoo:sdpa' cannot be changed" in failure(host, "priority")
    builtins_intact(host)


def test_a_plugin_edits_only_its_copy_of_nested_data(hostile_on_path: Path) -> None:
    host = load("tamper")
    assert host.plugins["tamper"].status == "loaded"
    assert resolve_spec("tamper:tamper-base", registry=host.registry).num_hidden_layers == 1  # its own copy
    builtins_intact(host)


@pytest.mark.parametrize("disabled", ["", "eager"])
def test_only_bertzoo_registers_in_the_bertzoo_namespace(hostile_on_path: Path, disabled: str) -> None:
    host = load("squat", BERTZOO_DISABLE_PLUGINS=disabled)
    error = failure(host, "squat")
    assert "plugin 'squat' (distribution 'bertzoo-squat') claims the namespace 'bertzoo'" in error
    assert "BERTZOO_DISABLE_PLUGINS" in error and "bertzoo_namespace" in error
    reg = host.registry
    if disabled:
        # the built-in stays absent: the squatter does not stand in for it, nor is it blamed for it
        with pytest.raises(ComponentNotFoundError) as exc:
            reg.get("attention", "bertzoo:eager")
        assert "because plugin 'squat'" not in str(exc.value)
        assert reg.list_components("attention", "*eager*") == []
    else:
        builtins_intact(host)


def test_a_distribution_named_bertzoo_something_gets_no_bertzoo_namespace(hostile_on_path: Path) -> None:
    host = load("bertzoo")  # distribution bertzoo-bertzoo: its default namespace would be "bertzoo"
    assert "(distribution 'bertzoo-bertzoo') claims the namespace 'bertzoo'" in failure(host, "bertzoo")
    assert host.registry.list_components("pooler", "*squatted*") == []


def test_a_plugin_cannot_rewrite_its_registrar(hostile_on_path: Path) -> None:
    host = load("forge")
    assert "plugin 'forge' tried to set 'namespace' on its registrar, which is read-only" in failure(host, "forge")
    assert host.registry.list_components("pooler", "*forged*") == []


def test_metadata_may_not_shadow_what_bertzoo_stamps(hostile_on_path: Path) -> None:
    host = load("shadow")
    assert "plugin 'shadow' passed 'plugin' as metadata of pooler 'shadow:shadow'" in failure(host, "shadow")
    assert host.registry.list_components("pooler", "*shadow*") == []


def test_plugins_lists_every_refusal_and_the_rest_works(
    cli: Callable[..., CompletedProcess[str]], tmp_path: Path
) -> None:
    root = tmp_path / "hostile-dists"
    shutil.copytree(HOSTILE, root)
    env = {"PYTHONPATH": str(root)}
    out = cli("plugins", "--json", env=env)
    assert out.returncode == 0, out.stderr
    rows = {p["name"]: p for p in json.loads(out.stdout)}
    hostile = {"swap", "priority", "squat", "bertzoo", "forge", "shadow"}
    assert {name for name in hostile if rows[name]["status"] == "failed" and rows[name]["error"]} == hostile
    assert rows["tamper"]["status"] == "loaded"
    out = cli("list", "attention", "--json", env=env)
    assert out.returncode == 0, out.stderr
    listed = {c["name"]: c for c in json.loads(out.stdout)}
    assert listed["bertzoo:eager"]["target"] == EAGER_TARGET and listed["bertzoo:eager"]["plugin"] == "eager"


def test_records_are_immutable_and_views_are_copies() -> None:
    reg = Registry()
    record = reg.register("attention", "x", "pkg.mod:X", plugin="p", capabilities={"devices": ["cpu"]}, priority=1)
    with pytest.raises(PluginError, match="'target' cannot be set"):
        record.target = "evil:X"  # type: ignore[misc]
    with pytest.raises(PluginError, match="capabilities of attention 'p:x' cannot be changed"):
        record.capabilities["devices"] = ["cuda"]  # type: ignore[index]
    for change in (lambda m: m.update(priority=2), lambda m: m.pop("priority"), lambda m: m.clear()):
        with pytest.raises(PluginError, match="metadata of attention 'p:x' cannot be changed"):
            change(record.metadata)
    # frozen mappings still behave as plain data
    assert record.metadata == {"priority": 1} and json.loads(json.dumps(reg.describe("attention", "x")))["priority"] == 1
    view = PluginRegistrar(reg, "q", "q").get("attention", "p:x")
    view.capabilities["devices"].append("tpu")
    assert reg.get("attention", "p:x").capabilities["devices"] == ["cpu"]
