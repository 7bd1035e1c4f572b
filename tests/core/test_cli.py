"""The ``bertzoo`` command, run in a subprocess like a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bertzoo.cli import parse_set
from bertzoo.errors import SpecError

Cli = Callable[..., subprocess.CompletedProcess[str]]


def names(stdout: str) -> list[tuple[str, str]]:
    """(kind, full name) of each row of `bertzoo list`'s table."""
    rows = stdout.strip().splitlines()
    assert rows[0].split()[:2] == ["KIND", "NAME"] and rows[0].split()[-1] in ("DESCRIPTION", "SOURCE")
    return [(row.split()[0], row.split()[1]) for row in rows[1:]]


def test_list_everything(cli: Cli) -> None:
    out = cli("list")
    assert out.returncode == 0, out.stderr
    rows = names(out.stdout)
    assert ("attention", "bertzoo:eager") in rows and ("preset", "bertzoo:bert-tiny") in rows
    assert ("embedding", "bertzoo:bert") in rows and ("pooler", "bertzoo:cls-tanh") in rows
    assert ("precision", "bertzoo:int8") in rows and ("family", "bertzoo:bert") in rows
    kinds = [kind for kind, _ in rows]
    order = ["embedding", "attention", "layer", "pooler", "head", "preset", "precision", "family"]
    assert kinds == sorted(kinds, key=order.index)  # grouped by kind, in KINDS order


def test_list_a_kind_and_patterns(cli: Cli) -> None:
    out = cli("list", "attention")
    assert out.returncode == 0 and {k for k, _ in names(out.stdout)} == {"attention"}
    out = cli("list", "*mini*")  # a pattern without a kind
    assert out.returncode == 0
    found = [n for _, n in names(out.stdout)]
    assert {"bertzoo:bert-mini", "bertzoo:minilm-l6-h384", "bertzoo:minilm-l12-h384"} <= set(found)
    assert all("mini" in n for n in found)
    assert found.index("bertzoo:minilm-l6-h384") < found.index("bertzoo:minilm-l12-h384")  # natural sort
    out = cli("list", "preset", "bert-base-*")
    assert [n for _, n in names(out.stdout)] == ["bertzoo:bert-base-cased", "bertzoo:bert-base-uncased"]
    # presets show their family and the config.json they copy
    assert out.stdout.splitlines()[0].split() == ["KIND", "NAME", "FAMILY", "DESCRIPTION", "SOURCE"]
    assert "https://huggingface.co/google-bert/bert-base-cased/blob/main/config.json" in out.stdout
    out = cli("list", "attention", "*nothing-matches*")
    assert out.returncode == 0 and out.stdout == "" and "no attention matches" in out.stderr


def test_list_json(cli: Cli) -> None:
    out = cli("list", "--json")
    assert out.returncode == 0, out.stderr
    items = json.loads(out.stdout)
    by_name = {(i["kind"], i["name"]): i for i in items}
    eager = by_name[("attention", "bertzoo:eager")]
    assert eager["plugin"] == "eager" and eager["target"] == "bertzoo.plugins.eager:EagerAttention"
    assert eager["capabilities"]["returns_weights"] is True
    assert by_name[("preset", "bertzoo:bert-tiny")]["target"] == "<dict>"
    assert all(set(i) >= {"kind", "name", "plugin", "description", "capabilities", "target"} for i in items)


def test_list_unknown_kind_is_a_user_error(cli: Cli) -> None:
    out = cli("list", "atention")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "bertzoo: error: unknown component kind 'atention' (did you mean 'attention'?); "
        "kinds are embedding, attention, layer, pooler, head, preset, precision, family"
    ]


def test_list_and_plugins_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from bertzoo.cli import main\n"
        "for argv in (['list'], ['list', '--json'], ['plugins', '--all'], ['plugins', '--json']):\n"
        "    assert main(argv) == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'numpy'))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stderr


def test_plugins_all_json(cli: Cli) -> None:
    out = cli("plugins", "--all", "--json")
    assert out.returncode == 0, out.stderr
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    for builtin in ("eager", "presets"):
        p = plugins[builtin]
        assert (p["distribution"], p["status"], p["builtin"], p["namespace"]) == ("bertzoo", "loaded", True, "bertzoo")
        assert p["version"] and p["error"] is None and p["components"]
    assert "preset:bertzoo:bert-tiny" in plugins["presets"]["components"]
    out = cli("plugins", "--json")  # without --all: no healthy built-in
    assert all(not p["builtin"] or p["status"] != "loaded" for p in json.loads(out.stdout))


def test_plugins_and_list_with_broken_third_party_plugins(cli: Cli, plugin_dists: Path) -> None:
    env = {"PYTHONPATH": str(plugin_dists)}
    out = cli("plugins", env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].split() == ["PLUGIN", "DISTRIBUTION", "VERSION", "STATUS", "COMPONENTS", "/", "ERROR"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert {"good", "brokenimport", "brokenhook", "collide", "future"} <= set(rows)
    assert rows["good"].split()[1:5] == ["bertzoo-good", "1.2.3", "loaded", "2"]
    assert "failed" in rows["brokenimport"] and "No module named 'bzfx_missing_dependency'" in rows["brokenimport"]
    assert "RuntimeError: the hook broke half-way" in rows["brokenhook"]
    assert "claims the namespace 'bertzoo'" in rows["collide"] and "plugin API >=2,<3" in rows["future"]
    assert len(lines) == 1 + len(rows)  # one line per plugin: errors are one line each
    assert "eager" not in rows  # healthy built-ins only with --all

    out = cli("list", env=env)
    assert out.returncode == 0, out.stderr
    assert ("attention", "good:linear") in names(out.stdout)
    assert ("attention", "bertzoo:eager") in names(out.stdout)
    assert "4 plugin(s) failed to load; see `bertzoo plugins`" in out.stderr

    out = cli("plugins", "--json", env={**env, "BERTZOO_PLUGINS": ""})
    statuses = {p["name"]: p["status"] for p in json.loads(out.stdout)}
    assert statuses["good"] == statuses["brokenimport"] == "disabled"

    out = cli("list", env={**env, "BERTZOO_STRICT_PLUGINS": "1"})
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("bertzoo: error: plugin 'brokenhook' failed to load")


def test_build_unknown_preset_is_one_line_and_debug_shows_the_traceback(cli: Cli) -> None:
    out = cli("build", "bert-tny")
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("bertzoo: error: 'bert-tny' is neither a preset nor a spec file; did you mean 'bert-tiny'")
    out = cli("--debug", "build", "bert-tny")
    assert out.returncode == 2
    assert "Traceback (most recent call last)" in out.stderr and "SpecError" in out.stderr
    assert out.stderr.strip().splitlines()[-1] == lines[0]


def test_build_bad_set_is_a_user_error(cli: Cli) -> None:
    out = cli("build", "bert-tiny", "--set", "num_hidden_layers")
    assert out.returncode == 2 and "--set 'num_hidden_layers' is not key=value" in out.stderr
    out = cli("build", "bert-tiny", "--set", "num_hiden_layers=1")
    assert out.returncode == 2 and "did you mean 'num_hidden_layers'" in out.stderr
    out = cli("build", "bert-tiny", "--set", "num_attention_heads=3")
    assert out.returncode == 2 and "must be divisible by num_attention_heads" in out.stderr
    out = cli("build")  # argparse's own usage error is exit 2 too
    assert out.returncode == 2 and "usage: bertzoo build" in out.stderr


def test_parse_set() -> None:
    assert parse_set(["num_hidden_layers=2", "is_decoder=true", "attention=sdpa", "layer_norm_eps=1e-7",
                      "components.head.options.num_labels=3", "pooler=none", "name=a=b", " hidden_act = gelu"]) == {
        "num_hidden_layers": 2, "is_decoder": True, "attention": "sdpa", "layer_norm_eps": 1e-7,
        "components.head.options.num_labels": 3, "pooler": "none", "name": "a=b", "hidden_act": "gelu",
    }
    assert parse_set(["x=[unclosed"]) == {"x": "[unclosed"}  # not YAML: kept as text
    for bad in ["novalue", "=3"]:
        with pytest.raises(SpecError, match="is not key=value"):
            parse_set([bad])


def test_build_print_spec(cli: Cli, tmp_path: Path) -> None:
    out = cli("build", "bert-tiny", "--print-spec", "--format", "json", "--set", "num_hidden_layers=1",
              "--set", "attention=eager", "--set", "pooler=none")
    assert out.returncode == 0, out.stderr
    spec = json.loads(out.stdout)
    assert (spec["name"], spec["hidden_size"], spec["num_hidden_layers"]) == ("bert-tiny", 128, 1)
    assert spec["components"]["attention"]["name"] == "eager" and spec["components"]["pooler"] is None
    assert "built bert-tiny: BertModel," in out.stderr and "parameters" in out.stderr
    # the printed spec builds the same model again, from a file
    path = tmp_path / "spec.json"
    path.write_text(out.stdout)
    again = cli("build", str(path), "--print-spec")
    assert again.returncode == 0, again.stderr
    assert out.stderr.splitlines()[-1].split(":", 1)[1] == again.stderr.splitlines()[-1].split(":", 1)[1]
