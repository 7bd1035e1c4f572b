"""bertzoo finds the installed plugin through its entry point, with its namespace and metadata."""

import subprocess
import sys

import bertzoo
from bertzoo.discovery import get_host, get_registry


def test_plugin_is_loaded_with_its_namespace_and_version():
    info = get_host().plugins["example"]
    assert info.status == "loaded", info.error
    assert (info.namespace, info.distribution, info.version) == ("example", "bertzoo-example-plugin", "0.1.0")
    assert info.components == [
        "attention:example:sliding-window", "head:example:mean-regression", "head:example:max-mean",
    ]


def test_components_are_listed_with_descriptions_and_capabilities():
    assert "example:sliding-window" in bertzoo.list_components("attention")
    assert "example:mean-regression" in bertzoo.list_components("head", "*regression*")
    record = get_registry().get("attention", "sliding-window")  # a unique short name resolves
    assert record.description
    assert record.capabilities["causal"] and not record.capabilities["cross_attention"]


def test_auto_never_picks_the_window():
    """With a short window the output changes, so only naming it selects it."""
    model = bertzoo.build("bert-tiny", num_hidden_layers=1)
    assert model.attention_choice.record.full_name != "example:sliding-window"


def test_cli_lists_it_without_importing_torch():
    code = (
        "import sys; from bertzoo.cli import main; rc = main(['list', 'attention', '*window*']); "
        "assert 'torch' not in sys.modules, 'listing imported torch'; sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "example:sliding-window" in done.stdout
