"""The example plugin package (examples/bertzoo-example-plugin), installed like any third-party plugin.

CI installs it next to bertzoo (README's set-up command), runs its own tests and runs the
conformance kit on it (``--bertzoo-conformance=example``). Here the main suite checks what a
user sees: bertzoo lists its components, builds models with them, and its plugin entry is healthy.
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

import pytest
import torch

import bertzoo
from bertzoo.discovery import get_host

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bertzoo-example-plugin"

try:
    DIST = md.distribution("bertzoo-example-plugin")
except md.PackageNotFoundError:  # pragma: no cover - the README's set-up installs it
    DIST = None

pytestmark = pytest.mark.skipif(
    DIST is None, reason="bertzoo-example-plugin is not installed (pip install -e examples/bertzoo-example-plugin)"
)


def test_installed_from_this_repository() -> None:
    assert DIST is not None
    module = __import__("bertzoo_example.plugin", fromlist=["plugin"])
    assert Path(module.__file__).resolve().is_relative_to(EXAMPLE)  # not a stale copy elsewhere


def test_plugin_loads_with_its_namespace_and_api_range() -> None:
    info = get_host().plugins["example"]
    assert info.status == "loaded", info.error
    assert info.namespace == "example" and not info.builtin
    module = __import__("bertzoo_example.plugin", fromlist=["plugin"])
    assert module.bertzoo_plugin_api == ">=1,<2"


def test_bertzoo_lists_its_components(cli) -> None:
    out = cli("list", "*example*")
    assert out.returncode == 0, out.stderr
    assert all(f"example:{name}" in out.stdout for name in ("sliding-window", "mean-regression", "max-mean"))
    plugins = cli("plugins")
    assert "bertzoo-example-plugin" in plugins.stdout and "3 component(s)" in plugins.stdout


def test_bertzoo_builds_a_model_with_both() -> None:
    model = bertzoo.build("bert-tiny", attention="sliding-window", window=4, head="mean-regression", num_targets=2)
    assert type(model).__name__ == "MeanRegressionHead"
    assert model.bert.attention_choice.record.full_name == "example:sliding-window"
    ids = torch.randint(1, 1000, (2, 12))
    out = model(ids, labels=torch.zeros(2, 2))
    assert out.predictions.shape == (2, 2) and out.loss.dim() == 0


def test_spec_file_names_them_and_validates_options(tmp_path: Path) -> None:
    spec = tmp_path / "local.yaml"
    spec.write_text(
        "hidden_size: 64\nnum_hidden_layers: 1\nnum_attention_heads: 2\nintermediate_size: 128\n"
        "components:\n  attention: {name: example:sliding-window, options: {window: 0}}\n"
    )
    with pytest.raises(bertzoo.SpecError, match=r"components\.attention\.options\.window"):
        bertzoo.build(spec)
