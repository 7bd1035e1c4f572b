"""Registry semantics: names, resolution, errors, lazy targets, listing, metadata."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bertzoo.errors import BertzooError, ComponentNotFoundError, PluginError
from bertzoo.registry import KINDS, PluginRegistrar, Registry


class Sdpa:
    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args, self.kwargs = args, kwargs


@pytest.fixture
def reg() -> Registry:
    r = Registry()
    r.register("attention", "eager", Sdpa, plugin="bertzoo", description="reference")
    r.register("attention", "sdpa", Sdpa, plugin="bertzoo", capabilities={"varlen": False}, priority=10)
    r.register("attention", "linear", "nowhere:Linear", plugin="foo")
    r.register("attention", "linear", "elsewhere:Linear", plugin="bar")
    r.register("pooler", "mean", Sdpa, plugin="bertzoo")
    return r


def test_full_and_unique_short_names_resolve(reg: Registry) -> None:
    record = reg.get("attention", "sdpa")
    assert (record.full_name, record.name, record.namespace, record.plugin) == ("bertzoo:sdpa", "sdpa", "bertzoo", "bertzoo")
    assert reg.get("attention", "bertzoo:sdpa") is record
    assert reg.get("attention", "foo:linear").target == "nowhere:Linear"
    assert reg.is_component("attention", "sdpa") and not reg.is_component("attention", "nope")
    # the same short name under another kind is another component
    assert reg.get("pooler", "mean").kind == "pooler"
    assert not reg.is_component("pooler", "sdpa")


def test_ambiguous_short_name_lists_candidates(reg: Registry) -> None:
    with pytest.raises(ComponentNotFoundError) as info:
        reg.get("attention", "linear")
    msg = str(info.value)
    assert "'linear' is ambiguous" in msg and "bar:linear, foo:linear" in msg and "plugin:name" in msg


def test_unknown_name_lists_close_matches_and_registered(reg: Registry) -> None:
    with pytest.raises(ComponentNotFoundError) as info:
        reg.get("attention", "sdp")
    msg = str(info.value)
    assert msg.startswith("unknown attention 'sdp'; did you mean 'sdpa'")
    assert "Registered attentions: bar:linear, bertzoo:eager, bertzoo:sdpa, foo:linear." in msg
    with pytest.raises(ComponentNotFoundError, match="did you mean 'bertzoo:sdpa'"):
        reg.get("attention", "bertzoo:sdpb")
    with pytest.raises(ComponentNotFoundError, match="No head is registered"):
        reg.get("head", "whatever")
    # a KeyError subclass whose str() is the message itself (KeyError would repr() it)
    assert isinstance(info.value, KeyError) and isinstance(info.value, BertzooError)
    assert not str(info.value).startswith('"')


def test_duplicate_full_name_names_both_sources(reg: Registry) -> None:
    with pytest.raises(PluginError) as info:
        reg.register("attention", "sdpa", "other.module:Sdpa", plugin="intruder", namespace="bertzoo")
    msg = str(info.value)
    assert "attention 'bertzoo:sdpa' is registered twice" in msg
    assert "plugin 'bertzoo'" in msg and "plugin 'intruder'" in msg and "'other.module:Sdpa'" in msg
    assert "Sdpa" in msg and "BERTZOO_DISABLE_PLUGINS" in msg
    assert reg.get("attention", "bertzoo:sdpa").target is Sdpa  # the first one stays


def test_bad_kinds_and_names(reg: Registry) -> None:
    with pytest.raises(PluginError, match="unknown kind 'atention'"):
        reg.register("atention", "x", Sdpa)
    for bad in ["Sdpa", "with space", "a:b", "-lead", ""]:
        with pytest.raises(PluginError, match="names are lower-case"):
            reg.register("attention", bad, Sdpa)
    with pytest.raises(PluginError, match="namespace 'Foo Bar'"):
        reg.register("attention", "ok", Sdpa, namespace="Foo Bar")
    with pytest.raises(ComponentNotFoundError, match="unknown component kind 'atention' \\(did you mean 'attention'"):
        reg.get("atention", "sdpa")
    with pytest.raises(ComponentNotFoundError, match="kinds are embedding, attention, layer, pooler, head, preset"):
        reg.list_components("heads-and-tails")
    assert set(KINDS) == {"embedding", "attention", "layer", "pooler", "head", "preset", "precision", "family"}


def test_lazy_target_is_imported_only_when_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = "bzfx_lazy_target"
    (tmp_path / f"{module}.py").write_text(
        "from pathlib import Path\n"
        "Path(__file__).with_suffix('.imported').write_text('imported')\n"
        "class Options:\n    pass\n"
        "class Thing:\n"
        "    def __init__(self, spec, **options):\n        self.spec, self.options = spec, options\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    marker = tmp_path / f"{module}.imported"
    r = Registry()
    r.register("layer", "thing", f"{module}:Thing", plugin="lazy", description="a lazy layer",
               capabilities={"x": 1}, options=f"{module}:Options", uses_cache=True)
    # listing, resolving and describing read the record only
    assert r.list_components("layer") == ["lazy:thing"]
    assert r.describe("layer", "thing") == {
        "kind": "layer", "name": "lazy:thing", "plugin": "lazy", "description": "a lazy layer",
        "capabilities": {"x": 1}, "target": f"{module}:Thing", "uses_cache": True,
    }
    assert r.get("layer", "thing").options == f"{module}:Options"
    assert not marker.exists() and module not in sys.modules
    built = r.create("layer", "thing", "spec", width=3)
    assert marker.exists()
    assert (built.spec, built.options) == ("spec", {"width": 3})
    assert r.get("layer", "thing").options_model().__name__ == "Options"
    monkeypatch.delitem(sys.modules, module, raising=False)


def test_broken_lazy_target_is_a_plugin_error_naming_it() -> None:
    r = Registry()
    r.register("pooler", "ghost", "bzfx_no_such_module:Ghost", plugin="spooky")
    r.register("pooler", "badform", "no-colon-here", plugin="spooky")
    with pytest.raises(PluginError, match="pooler 'spooky:ghost' from plugin 'spooky'.*No module named 'bzfx_no_such_module'"):
        r.create("pooler", "ghost")
    with pytest.raises(PluginError, match="not of the form 'module:attr'"):
        r.create("pooler", "badform")
    r.register("pooler", "noattr", "json:NoSuchThing", plugin="spooky")
    with pytest.raises(PluginError, match="AttributeError"):
        r.get("pooler", "noattr").load()


def test_list_components_wildcards_exclude_and_natural_sort() -> None:
    r = Registry()
    for name in ["minilm-l12-h384", "bert-tiny", "minilm-l6-h384", "bert-l2", "bert-l12", "bert-l10", "bert-l1"]:
        r.register("preset", name, {}, plugin="bertzoo")
    r.register("attention", "sdpa", Sdpa, plugin="bertzoo")
    r.register("attention", "sdpa", Sdpa, plugin="foo")
    r.register("pooler", "mean", Sdpa, plugin="foo")
    # natural sort: l2 before l10 before l12; kinds in KINDS order
    assert r.list_components("preset", "bert-l*") == ["bertzoo:bert-l1", "bertzoo:bert-l2", "bertzoo:bert-l10", "bertzoo:bert-l12"]
    assert r.list_components("preset", "*minilm*") == ["bertzoo:minilm-l6-h384", "bertzoo:minilm-l12-h384"]
    assert r.list_components(pattern="*sdp?") == ["bertzoo:sdpa", "foo:sdpa"]
    assert r.list_components(pattern="foo:*") == ["foo:sdpa", "foo:mean"]
    assert r.list_components("preset", ["bert-tiny", "*l6*"]) == ["bertzoo:bert-tiny", "bertzoo:minilm-l6-h384"]
    assert r.list_components("preset", "bert-*", exclude="bert-l1*") == ["bertzoo:bert-l2", "bertzoo:bert-tiny"]
    assert r.list_components("preset", "*", exclude=["bert-*", "*l12*"]) == ["bertzoo:minilm-l6-h384"]
    assert r.list_components("head") == []
    assert r.list_components("attention", "*SDPA*") == []  # case-sensitive, like timm
    assert len(r.list_components()) == 10


def test_registrar_stamps_plugin_and_namespace() -> None:
    r = Registry()
    registrar = PluginRegistrar(r, plugin="foo-plugin", namespace="foo", distribution="bertzoo-foo", version="1.0")
    record = registrar.register("attention", "linear", Sdpa, description="d", capabilities={"varlen": True}, priority=3)
    assert (record.full_name, record.plugin, record.distribution, record.version) == ("foo:linear", "foo-plugin", "bertzoo-foo", "1.0")
    assert record.metadata == {"priority": 3}
    assert registrar.registered == [record]
    # a plugin reading a record gets an equal copy, never the registry's own
    assert registrar.get("attention", "linear") == record and registrar.get("attention", "linear") is not record


def test_describe_data_targets_without_building() -> None:
    r = Registry()
    r.register("preset", "tiny", {"hidden_size": 8}, plugin="bertzoo", description="tiny")
    r.register("head", "cls", Sdpa, plugin="bertzoo", uses_pooler=True)
    assert r.describe("preset", "tiny")["target"] == "<dict>"
    assert r.describe("head", "cls")["target"] == f"{__name__}:Sdpa"
    assert r.describe("head", "cls")["uses_pooler"] is True


def test_remove_and_unregister_plugin() -> None:
    r = Registry()
    a = r.register("pooler", "a", Sdpa, plugin="p")
    r.register("pooler", "b", Sdpa, plugin="p")
    r.register("pooler", "c", Sdpa, plugin="q")
    r.remove(a)
    assert r.list_components("pooler") == ["p:b", "q:c"]
    r.unregister_plugin("p")
    assert r.list_components("pooler") == ["q:c"]


def test_failed_plugin_lookup_messages() -> None:
    r = Registry()
    r.register("attention", "eager", Sdpa, plugin="eager", namespace="bertzoo")
    r.record_failure("foo", "ImportError: no foo", [("attention", "foo:linear")], namespace="foo")
    r.record_failure("clash", "PluginError: clash", namespace="bertzoo")
    with pytest.raises(ComponentNotFoundError, match="'foo:linear' is not available because plugin 'foo' failed to load: ImportError: no foo"):
        r.get("attention", "foo:linear")
    with pytest.raises(ComponentNotFoundError, match="'linear' is not available because plugin 'foo'"):
        r.get("attention", "linear")
    with pytest.raises(ComponentNotFoundError, match="'foo:other' is not available because plugin 'foo'"):
        r.get("attention", "foo:other")
    # namespace bertzoo is served by a loaded plugin: a miss there is a plain miss
    with pytest.raises(ComponentNotFoundError, match="unknown attention 'bertzoo:nope'.*Plugins that failed to load .*clash, foo"):
        r.get("attention", "bertzoo:nope")
