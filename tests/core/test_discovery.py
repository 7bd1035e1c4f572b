"""Plugin discovery through real entry points of throwaway distributions (tests/fixtures/dists).

Each test makes its own :class:`PluginHost` (never the process-wide one) and puts the fixture
distributions on ``sys.path``; ``importlib.metadata`` then finds their ``entry_points.txt``
exactly as it finds an installed package's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bertzoo import discovery
from bertzoo import hookimpl as bertzoo_hookimpl
from bertzoo.discovery import PluginHost
from bertzoo.errors import ComponentNotFoundError, PluginError
from bertzoo.hookspecs import PLUGIN_API_VERSION
from bertzoo.registry import Registry

FIXTURE_PLUGINS = {"good", "brokenimport", "brokenhook", "collide", "future"}


def load(environ: dict[str, str] | None = None) -> PluginHost:
    host = PluginHost(Registry())
    host.load_entry_points(environ or {})
    return host


def statuses(host: PluginHost) -> dict[str, str]:
    return {name: info.status for name, info in host.plugins.items() if name in FIXTURE_PLUGINS}


def test_good_plugin_loads_and_bad_ones_are_isolated(dists_on_path: Path) -> None:
    host = load()
    assert statuses(host) == {
        "good": "loaded", "brokenimport": "failed", "brokenhook": "failed", "collide": "failed", "future": "failed",
    }
    good = host.plugins["good"]
    assert (good.distribution, good.version, good.namespace, good.builtin) == ("bertzoo-good", "1.2.3", "good", False)
    assert good.components == ["attention:good:linear", "preset:good:good-tiny"]
    reg = host.registry
    assert reg.get("attention", "linear").full_name == "good:linear"
    assert reg.get("preset", "good:good-tiny").plugin == "good"
    # the built-ins are untouched by the failures next to them
    assert reg.get("attention", "bertzoo:eager").plugin == "eager"
    assert "bertzoo:cls-tanh" in reg.list_components("pooler")


def test_failures_are_recorded_with_their_errors(dists_on_path: Path) -> None:
    host = load()
    errors = {name: host.plugins[name].error or "" for name in FIXTURE_PLUGINS - {"good"}}
    assert errors["brokenimport"] == "ModuleNotFoundError: No module named 'bzfx_missing_dependency'"
    # a multi-line message is cut to one line; the full traceback is kept apart
    assert errors["brokenhook"] == "RuntimeError: the hook broke half-way ..."
    assert "second line of the message" in (host.plugins["brokenhook"].traceback or "")
    # only bertzoo's own distribution may use the bertzoo namespace (issue 19 item 2)
    assert "plugin 'collide' (distribution 'bertzoo-collide') claims the namespace 'bertzoo'" in errors["collide"]
    assert "needs bertzoo plugin API >=2,<3" in errors["future"] and f"provides {PLUGIN_API_VERSION}" in errors["future"]
    assert all("\n" not in e for e in errors.values())
    failed = set(host.registry.failed_plugins)
    assert failed & FIXTURE_PLUGINS == FIXTURE_PLUGINS - {"good"}
    assert "bertzoo" not in failed  # keyed by plugin name; collide's namespace is not a plugin


def test_a_failing_hook_is_rolled_back(dists_on_path: Path) -> None:
    reg = load().registry
    # brokenhook registered `brokenhook:half` before raising; collide was refused before registering
    assert reg.list_components(pattern="*half*") == []
    assert reg.list_components(pattern="*collide*") == []
    for kind, name in [("attention", "brokenhook:half"), ("attention", "half"), ("pooler", "collide-extra")]:
        with pytest.raises(ComponentNotFoundError, match="failed to load"):
            reg.get(kind, name)
    # the built-in that collide collided with is still the built-in
    assert reg.get("attention", "bertzoo:eager").target == "bertzoo.plugins.eager:EagerAttention"


def test_asking_for_a_failed_plugins_component_says_so(dists_on_path: Path) -> None:
    reg = load().registry
    with pytest.raises(ComponentNotFoundError) as info:
        reg.get("attention", "brokenimport:thing")
    msg = str(info.value)
    assert "plugin 'brokenimport' failed to load" in msg
    assert "No module named 'bzfx_missing_dependency'" in msg
    with pytest.raises(ComponentNotFoundError, match="plugin 'future' failed to load: PluginError: .*API"):
        reg.get("attention", "future:future")
    # a short name nobody registered lists the failed plugins as possible sources
    with pytest.raises(ComponentNotFoundError, match="Plugins that failed to load .*brokenimport"):
        reg.get("attention", "thing")


def test_lazy_targets_of_a_plugin_are_imported_only_when_built(dists_on_path: Path) -> None:
    marker = dists_on_path / "bzfx_good_impl.imported"
    marker.unlink(missing_ok=True)
    sys.modules.pop("bzfx_good_impl", None)
    reg = load().registry
    record = reg.get("attention", "good:linear")
    assert reg.describe("attention", "linear")["target"] == "bzfx_good_impl:LinearAttention"
    assert record.capabilities == {"devices": ["cpu"], "dtypes": ["float32"]}
    assert record.metadata == {"priority": -100}
    assert not marker.exists() and "bzfx_good_impl" not in sys.modules
    built = reg.create("attention", "linear", "the-spec", feature_dim=4)
    assert marker.exists()
    assert (type(built).__name__, built.spec, built.options) == ("LinearAttention", "the-spec", {"feature_dim": 4})
    assert record.options_model().__name__ == "LinearOptions"


@pytest.mark.parametrize(
    ("allow", "loaded"),
    [
        ("good", {"good"}),  # entry-point name
        ("bertzoo-good", {"good"}),  # distribution name
        ("Bertzoo_Good", {"good"}),  # distribution name, not normalised
        (" good , future ", {"good", "future"}),  # namespace list with spaces (future is tried, and fails)
        ("", set()),  # set but empty: no third-party plugin
        (",", set()),
    ],
)
def test_bertzoo_plugins_allow_list(dists_on_path: Path, allow: str, loaded: set[str]) -> None:
    host = load({"BERTZOO_PLUGINS": allow})
    tried = {name for name, status in statuses(host).items() if status != "disabled"}
    assert tried == loaded
    assert {name for name, s in statuses(host).items() if s == "disabled"} == FIXTURE_PLUGINS - loaded
    # built-ins are not third-party plugins: they load whatever the allow-list says
    assert host.plugins["eager"].status == "loaded"
    assert "bertzoo:eager" in host.registry.list_components("attention")


def test_disabled_plugins_are_skipped_builtins_included(dists_on_path: Path) -> None:
    host = load({"BERTZOO_DISABLE_PLUGINS": "brokenimport, bertzoo-brokenhook,collide,future,eager"})
    assert statuses(host) == {
        "good": "loaded", "brokenimport": "disabled", "brokenhook": "disabled", "collide": "disabled",
        "future": "disabled",
    }
    assert not set(host.registry.failed_plugins) & FIXTURE_PLUGINS
    assert host.plugins["eager"].status == "disabled"
    attentions = host.registry.list_components("attention")
    assert "bertzoo:eager" not in attentions and "good:linear" in attentions


def test_strict_mode_raises_on_the_first_failure(dists_on_path: Path) -> None:
    env = {"BERTZOO_STRICT_PLUGINS": "1", "BERTZOO_PLUGINS": "good,brokenhook"}
    with pytest.raises(PluginError, match="plugin 'brokenhook' failed to load .*RuntimeError: the hook broke"):
        load(env)
    load({**env, "BERTZOO_STRICT_PLUGINS": "0"})  # "0" means off
    load({"BERTZOO_STRICT_PLUGINS": "1", "BERTZOO_PLUGINS": "good"})  # nothing fails: no error


def test_register_plugin_object_and_api_checks() -> None:
    from types import SimpleNamespace

    import bertzoo

    calls: list[str] = []

    @bertzoo.hookimpl
    def bertzoo_register(registry: object) -> None:
        calls.append("called")
        registry.register("pooler", "first", "somewhere:First")  # type: ignore[attr-defined]

    @bertzoo.hookimpl(specname="bertzoo_register")
    def takes_no_argument() -> None:  # pluggy's opt-in arguments: fewer than the spec is fine
        calls.append("no-arg")

    host = PluginHost(Registry())
    info = host.register_plugin("mine", SimpleNamespace(bertzoo_register=bertzoo_register, other=takes_no_argument))
    assert info.status == "loaded" and sorted(calls) == ["called", "no-arg"]
    assert host.registry.get("pooler", "mine:first").plugin == "mine"
    with pytest.raises(PluginError, match="already loaded"):
        host.register_plugin("mine", SimpleNamespace())

    cases = {
        "nohook": (SimpleNamespace(), "no function marked @bertzoo.hookimpl"),
        "badspec": (SimpleNamespace(bertzoo_plugin_api="version two", bertzoo_register=bertzoo_register),
                    "not a version specifier"),
        "badns": (SimpleNamespace(bertzoo_namespace="Bad Name", bertzoo_register=bertzoo_register),
                  "namespace 'Bad Name'"),
    }
    for name, (plugin, message) in cases.items():
        info = host.register_plugin(name, plugin)
        assert info.status == "failed" and message in (info.error or ""), (name, info.error)
    # a failed registration left nothing behind, and the good plugin is intact
    assert host.registry.list_components("pooler") == ["mine:first"]


def test_default_namespace() -> None:
    ns = discovery._default_namespace
    assert ns("eager", "bertzoo") == "bertzoo"
    assert ns("x", "bertzoo-foo") == "foo"
    assert ns("x", "Bertzoo_Foo") == "foo"
    assert ns("Linear", "someones-package") == "linear"
    assert ns("linear", None) == "linear"


def test_process_registry_is_lazy_and_resettable(dists_on_path: Path) -> None:
    discovery.reset()
    try:
        assert discovery._host is None  # nothing discovered until first use
        assert "good:linear" in discovery.get_registry().list_components("attention")
        assert discovery.get_host() is discovery.get_host()
    finally:
        discovery.reset()


def test_plugin_names_shared_by_two_distributions_are_both_kept(dists_on_path: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "bertzoo_other-0.1.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: bertzoo-other\nVersion: 0.1\n")
    (other / "entry_points.txt").write_text("[bertzoo]\ngood = bzfx_other\n")
    (tmp_path / "bzfx_other.py").write_text(
        "from bertzoo import hookimpl\n\n@hookimpl\ndef bertzoo_register(registry):\n"
        "    registry.register('attention', 'linear', 'bzfx_other:Linear')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    host = load({"BERTZOO_PLUGINS": "good,other"})
    assert host.plugins["good"].status == "loaded"
    assert host.plugins["bertzoo-other:good"].status == "loaded"
    assert sorted(host.registry.list_components("attention", "*linear")) == ["good:linear", "other:linear"]
    with pytest.raises(ComponentNotFoundError, match="ambiguous: it is provided by good:linear, other:linear"):
        host.registry.get("attention", "linear")


def test_a_plugin_calling_sys_exit_is_isolated() -> None:
    class Exits:
        @staticmethod
        def bertzoo_register(registry: object) -> None:
            raise SystemExit(3)

    Exits.bertzoo_register = bertzoo_hookimpl(Exits.bertzoo_register)  # type: ignore[method-assign]
    host = PluginHost(Registry())
    info = host.register_plugin("exits", Exits())
    assert info.status == "failed" and info.error == "SystemExit: 3"


def test_a_plugin_may_only_add_commands_and_a_bad_hook_signature_says_why() -> None:
    class CommandsOnly:
        @bertzoo_hookimpl
        def bertzoo_register_commands(self, subparsers: object) -> None: ...

    class AsksForCli:  # llm's argument name, which bertzoo's hookspec does not have
        @bertzoo_hookimpl
        def bertzoo_register_commands(self, cli: object) -> None: ...

    class NoHook:
        pass

    host = PluginHost(Registry())
    assert host.register_plugin("commands-only", CommandsOnly()).status == "loaded"
    assert [info.name for info, _ in host.hook_functions("bertzoo_register_commands")] == ["commands-only"]
    info = host.register_plugin("asks-for-cli", AsksForCli())
    assert info.status == "failed" and "\n" not in (info.error or "")
    # every line of pluggy's message, joined: the first names the hook, the last says what is wrong
    assert (info.error or "").startswith(
        "PluginValidationError: Plugin 'asks-for-cli' for hook 'bertzoo_register_commands'; "
        "hookimpl definition: bertzoo_register_commands(")
    assert (info.error or "").endswith(
        "; Argument(s) {'cli'} are declared in the hookimpl but can not be found in the hookspec")
    info = host.register_plugin("no-hook", NoHook())
    assert info.status == "failed" and "named bertzoo_register (or bertzoo_register_commands)" in (info.error or "")


def test_a_hook_asking_for_the_registry_fails_instead_of_hanging() -> None:
    """get_registry() inside a hook used to wait forever on the loading lock."""
    import json
    import os
    import subprocess
    import sys

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "reentrant_dists"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTZOO_")}
    env["PYTHONPATH"] = os.pathsep.join([str(fixtures), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-m", "bertzoo.cli", "plugins", "--json"], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    plugins = {p["name"]: p for p in json.loads(done.stdout)}
    assert plugins["reentrant"]["status"] != "loaded"
    assert "from inside its hook while plugins were loading" in plugins["reentrant"]["error"]
    assert done.returncode == 0, done.stderr  # the rest of bertzoo loads
