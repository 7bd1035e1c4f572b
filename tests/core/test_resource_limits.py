"""Resource limits (issue 19 item 3): sizes are estimated from the spec and absurd ones refused
before anything is allocated; booleans and non-finite numbers are not sizes or rates.

Cases that would allocate without end if the check were missing run in a child process with its
address space capped (``RLIMIT_AS``), so a regression fails the test instead of the machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from bertzoo.errors import SpecError
from bertzoo.factory import build
from bertzoo.limits import DEFAULT_MAX_LAYERS, DEFAULT_MAX_PARAMETERS, check_size, estimate_size
from bertzoo.spec import ModelSpec

TINY = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 24,
        "vocab_size": 40, "max_position_embeddings": 20}

CAPPED_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    cap = 4 * 1024**3  # far above what the refusals need, far below what the specs ask for
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from bertzoo import from_pretrained
    from bertzoo.factory import build

    cases = {
        "spec": lambda: build("bert-tiny", num_hidden_layers=1_000_000_000),
        "config.json": lambda: from_pretrained(sys.argv[1]),
        # under a raised limit, 2**48 weights cannot be allocated: a SpecError, not torch's RuntimeError
        "allocation": lambda: build("bert-tiny", vocab_size=2**40, hidden_size=256, num_attention_heads=2,
                                    max_parameters=10**15),
    }
    results = {}
    for name, make in cases.items():
        start = time.monotonic()
        try:
            make()
            outcome = "built"
        except BaseException as exc:  # the point: which type comes out
            outcome = f"{type(exc).__name__}: {exc}"
        results[name] = {"outcome": outcome[:2000], "seconds": time.monotonic() - start}
    print(json.dumps(results))
    """
)


def test_giant_specs_are_refused_before_allocating(tiny_bert: Path, tmp_path: Path) -> None:
    folder = tmp_path / "deep-config"
    shutil.copytree(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 1_000_000_000}))
    child = subprocess.run([sys.executable, "-c", CAPPED_CHILD, str(folder)], capture_output=True, text=True,
                           timeout=600, check=False)
    assert child.returncode == 0, child.stderr[-2000:]
    results = json.loads(child.stdout.strip().splitlines()[-1])
    spec, checkpoint, allocation = (results[k]["outcome"] for k in ("spec", "config.json", "allocation"))
    assert spec.startswith("SpecError: spec 'bert-tiny' asks for num_hidden_layers=1,000,000,000"), spec
    assert f"the limit is {DEFAULT_MAX_LAYERS:,} layers" in spec and "BERTZOO_MAX_LAYERS=N" in spec
    assert checkpoint.startswith(f"SpecError: checkpoint {str(folder)!r} (config.json) asks for"), checkpoint
    assert allocation.startswith("SpecError: building spec 'bert-tiny' ran out of memory"), allocation
    assert "parameters" in allocation and "smaller sizes" in allocation
    assert all(r["seconds"] < 60 for r in results.values()), results


def test_parameter_limit_names_the_number_the_limit_and_the_override() -> None:
    with pytest.raises(SpecError) as exc:
        build("bert-base-uncased", hidden_size=65536, num_attention_heads=16, intermediate_size=4)
    message = str(exc.value)
    assert f"the limit is {DEFAULT_MAX_PARAMETERS:,} parameters" in message
    assert "asks for about 212,500,938,800 parameters" in message and "GiB" in message and "hidden_size=65,536" in message
    assert "max_parameters=N" in message and "BERTZOO_MAX_PARAMETERS=N" in message


def test_limits_come_from_the_keyword_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    parameters = estimate_size(ModelSpec.from_data(TINY)).parameters
    with pytest.raises(SpecError, match=f"asks for about {parameters:,} parameters .*the limit is 1,000 parameters"):
        build(TINY, max_parameters=1000)
    monkeypatch.setenv("BERTZOO_MAX_PARAMETERS", "1e3")
    with pytest.raises(SpecError, match="the limit is 1,000 parameters"):
        build(TINY)
    assert sum(p.numel() for p in build(TINY, max_parameters=parameters).parameters()) == parameters
    monkeypatch.setenv("BERTZOO_MAX_LAYERS", "1")
    with pytest.raises(SpecError, match="num_hidden_layers=2 .*the limit is 1 layers"):
        build(TINY, max_parameters=parameters)
    build(TINY, max_parameters=parameters, max_layers=2)  # the keyword wins over the environment
    monkeypatch.setenv("BERTZOO_MAX_LAYERS", "many")
    with pytest.raises(SpecError, match="BERTZOO_MAX_LAYERS='many' is not a positive integer"):
        build(TINY)


@pytest.mark.parametrize(
    "changes",
    [{}, {"add_cross_attention": True, "is_decoder": True}, {"num_hidden_layers": 0}, {"type_vocab_size": 1}],
)
@pytest.mark.parametrize("pooler", ["cls-tanh", None])
def test_the_estimate_is_exact_for_the_built_in_trunk(changes: dict[str, Any], pooler: str | None) -> None:
    spec = ModelSpec.from_data({**TINY, **changes, "components": {"pooler": pooler}})
    model = build(spec)
    assert estimate_size(spec).parameters == sum(p.numel() for p in model.parameters())


def test_bert_base_estimate_and_memory() -> None:
    spec = ModelSpec()  # bert-base: 109,482,240 parameters (transformers' BertModel with pooler)
    estimate = check_size(spec, bytes_per_parameter=2)
    assert estimate.parameters == 109_482_240
    assert 2 * 109_482_240 < estimate.memory_bytes < 2 * 109_482_240 + 12 * 64 * 1024


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("hidden_size", True, "hidden_size: Value error, must be a number, not the boolean true"),
        ("num_hidden_layers", False, "num_hidden_layers: Value error, must be a number, not the boolean false"),
        ("pad_token_id", True, "pad_token_id: Value error, must be a number, not the boolean true"),
        ("layer_norm_eps", True, "layer_norm_eps: Value error, must be a number, not the boolean true"),
        ("layer_norm_eps", float("inf"), "layer_norm_eps: Input should be a finite number"),
        ("layer_norm_eps", float("nan"), "layer_norm_eps: Input should be a finite number"),
        ("initializer_range", float("inf"), "initializer_range: Input should be a finite number"),
        ("hidden_dropout_prob", float("nan"), "hidden_dropout_prob: Input should be a finite number"),
    ],
)
def test_booleans_and_non_finite_numbers_are_refused(field: str, value: Any, message: str) -> None:
    with pytest.raises(SpecError, match=f"^invalid spec: {message}$"):
        ModelSpec.from_data({field: value})
    with pytest.raises(SpecError, match=f"^invalid config.json: {message}$"):
        ModelSpec.from_hf_config({"model_type": "bert", field: value})


def test_yaml_inf_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("hidden_size: 64\nnum_attention_heads: 2\nlayer_norm_eps: .inf\n")
    with pytest.raises(SpecError, match="layer_norm_eps: Input should be a finite number"):
        ModelSpec.load(path)


def test_refusal_is_fast() -> None:
    start = time.monotonic()
    with pytest.raises(SpecError, match="num_hidden_layers=1,000,000,000"):
        check_size(ModelSpec(num_hidden_layers=1_000_000_000))
    assert time.monotonic() - start < 1
