"""The conformance kit catches what it promises to catch, and says which component, case and by how much.

Each test registers a deliberately broken component next to the built-ins in a fresh registry
and checks the kit's verdict and message; the built-ins themselves are checked in
tests/plugins/test_attention_conformance.py (attention) and below (the other kinds). The pytest
plugin is run in a subprocess on a throwaway plugin distribution.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn

from bertzoo.errors import ComponentNotFoundError, SpecError
from bertzoo.heads import register as heads_register
from bertzoo.plugins import register_eager, register_flash, register_sdpa
from bertzoo.plugins.eager import BertLayer, BertPooler
from bertzoo.registry import PluginRegistrar, Registry
from bertzoo.testing import (
    ConformanceError,
    ConformanceFailure,
    attention_reference,
    check_component,
    check_plugin,
    component_cases,
)

ALL_CAPS = {"devices": ("cpu",), "dtypes": ("float32", "bfloat16"), "causal": True, "kv_cache": False,
            "cross_attention": False, "returns_weights": False, "head_mask": False, "dropout": False}


@pytest.fixture
def registry() -> Registry:
    """Built-in eager, sdpa, flash and heads in a fresh registry (the kit's references), nothing else."""
    reg = Registry()
    for module, plugin in ((register_eager, "eager"), (register_sdpa, "sdpa"), (register_flash, "flash"),
                           (heads_register, "heads")):
        module.bertzoo_register(PluginRegistrar(reg, plugin, "bertzoo"))
    return reg


def failures(report: Any) -> dict[str, str]:
    """case name -> message."""
    return {case_id.rsplit("/", 1)[1]: message for case_id, message in report.failed.items()}


# -- attention ------------------------------------------------------------------------------------------


class IgnoresPadding(nn.Module):
    """SDPA that forgets the padding mask (a classic bug), but honours causality."""

    def __init__(self, spec: Any = None) -> None:
        super().__init__()

    def forward(self, q, k, v, *, mask, dropout_p=0.0, scale=None, need_weights=False, head_mask=None):
        if q.dim() != 4:
            raise ComponentNotFoundError("packed input")  # any BertzooError naming 'packed'
        return F.scaled_dot_product_attention(q, k, v, is_causal=mask.causal and mask.query_offset == 0, scale=scale), None


def test_attention_that_ignores_padding_fails_with_the_measured_difference(registry: Registry) -> None:
    registry.register("attention", "nopad", IgnoresPadding, plugin="bad", capabilities=ALL_CAPS)
    report = check_component("attention", "bad:nopad", registry=registry, raise_on_failure=False)
    failed = failures(report)
    assert "padding[none,fp32]" not in failed  # nothing to ignore without padding
    message = failed["padding[right,fp32]"]
    assert message.startswith("attention bad:nopad, case padding[right,fp32]: ")
    assert "max |diff|" in message and "> tolerance 1e-05" in message and "at (batch" in message
    assert "refuses-call[returns_weights]" in failed  # it silently ignores need_weights too
    assert "did not raise" in failed["refuses-call[returns_weights]"]
    with pytest.raises(ConformanceError, match=r"attention bad:nopad does not conform: \d+ passed, \d+ failed"):
        check_component("attention", "bad:nopad", registry=registry)


def test_undeclared_capability_is_refused_by_choose(registry: Registry) -> None:
    """A claimed capability is exercised; the absence of a claim is checked through choose()."""
    registry.register("attention", "honest", "bertzoo.plugins.sdpa:SdpaAttention", plugin="ok",
                      capabilities={**ALL_CAPS, "returns_weights": False})
    names = [c.name for c in component_cases("attention", "ok:honest", registry=registry)]
    assert "choose-refuses[returns_weights]" in names and "returns-weights" not in names
    assert "choose-accepts[causal]" in names and "causal[padded,bf16]" in names
    assert "cross-attention[fp32]" not in names and "refuses-call[cross_attention]" in names
    report = check_component("attention", "ok:honest", registry=registry, raise_on_failure=False)
    # sdpa itself supports cross-attention and a cache, so the call does not refuse them: the kit says so
    assert set(failures(report)) == {"refuses-call[cross_attention]", "refuses-call[kv_cache]"}
    assert "did not raise; it must raise IncompatibleComponentError" in failures(report)["refuses-call[kv_cache]"]


def test_visible_restricts_the_reference() -> None:
    q, k, v = (torch.randn(1, 1, 4, 2, dtype=torch.float64) for _ in range(3))
    from bertzoo.interfaces import AttentionMask

    _, probs = attention_reference(q, k, v, AttentionMask(), 1.0, visible=lambda s, sk, o: torch.eye(s, sk, dtype=torch.bool))
    assert torch.equal(probs[0, 0], torch.eye(4, dtype=torch.float64))


# -- embeddings, layers, poolers ---------------------------------------------------------------------------


class MeanOfEverything(nn.Module):
    """A mean pooler that forgets the mask."""

    def __init__(self, spec: Any = None) -> None:
        super().__init__()

    def forward(self, hidden, attention_mask=None):
        return hidden.mean(dim=1)


class DeadParameterLayer(BertLayer):
    """A layer with a parameter that never takes part in the forward."""

    def __init__(self, spec: Any, attention: Any, cross_attention: Any = None) -> None:
        super().__init__(spec, attention, cross_attention)
        self.unused = nn.Linear(4, 4)


class AlwaysDropout(BertPooler):
    """A pooler whose dropout ignores eval mode."""

    def forward(self, hidden, attention_mask=None):
        return F.dropout(super().forward(hidden, attention_mask), p=0.5, training=True)


def test_pooler_that_ignores_the_mask_fails(registry: Registry) -> None:
    registry.register("pooler", "mean-all", MeanOfEverything, plugin="bad")
    failed = failures(check_component("pooler", "bad:mean-all", registry=registry, raise_on_failure=False))
    assert list(failed) == ["ignores-padding", "packed-input"]  # it has no cu_seqlens argument either
    assert "pooled output when the padded positions change differs" in failed["ignores-padding"]
    assert failed["ignores-padding"].endswith("Fix: exclude padded positions using attention_mask "
                                              "(bertzoo.heads.pooling.pool does it)")
    assert "unexpected keyword argument 'cu_seqlens'" in failed["packed-input"]


class PackedMeanWrong(nn.Module):
    """Right padded, but packed it averages the whole batch's tokens instead of each sequence's."""

    def __init__(self, spec: Any = None) -> None:
        super().__init__()

    def forward(self, hidden, attention_mask=None, *, cu_seqlens=None):
        if cu_seqlens is not None:
            return hidden.mean(dim=0, keepdim=True).expand(len(cu_seqlens) - 1, -1)
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1)


def test_pooler_that_mixes_sequences_when_packed_fails_only_the_packed_case(registry: Registry) -> None:
    registry.register("pooler", "packed-wrong", PackedMeanWrong, plugin="bad")
    failed = failures(check_component("pooler", "bad:packed-wrong", registry=registry, raise_on_failure=False))
    assert list(failed) == ["packed-input"]
    assert "pooled output of the packed (T, H) states with cu_seqlens differs from the reference" in failed["packed-input"]


def test_layer_with_a_dead_parameter_fails_naming_it(registry: Registry) -> None:
    registry.register("layer", "dead", DeadParameterLayer, plugin="bad")
    failed = failures(check_component("layer", "bad:dead", registry=registry, raise_on_failure=False))
    assert list(failed) == ["gradients"]
    assert "no gradient reached unused.weight, unused.bias" in failed["gradients"]


def test_nondeterministic_pooler_fails(registry: Registry) -> None:
    registry.register("pooler", "noisy", AlwaysDropout, plugin="bad")
    failed = failures(check_component("pooler", "bad:noisy", registry=registry, raise_on_failure=False))
    assert "deterministic-eval" in failed and "second eval-mode call differs" in failed["deterministic-eval"]


@pytest.mark.parametrize(("kind", "name"), [
    ("embedding", "bertzoo:bert"), ("layer", "bertzoo:bert"), ("pooler", "bertzoo:cls-tanh"),
    ("pooler", "bertzoo:mean"), ("pooler", "bertzoo:max"), ("pooler", "bertzoo:cls"),
])
def test_builtin_modules_conform(registry: Registry, kind: str, name: str) -> None:
    report = check_component(kind, name, registry=registry)
    assert len(report.passed) >= 6 and not report.skipped


# -- heads and options ------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", sorted(heads_register._HEADS))
def test_builtin_heads_conform(registry: Registry, head: str) -> None:
    report = check_component("head", head, registry=registry)
    assert {"contract", "loss", "save-load"} <= {c.rsplit("/", 1)[1] for c in report.passed}


class LooseOptions(BaseModel):
    anything: Any = None


class LoosePooler(MeanOfEverything):
    def __init__(self, spec: Any = None, anything: Any = None) -> None:
        super().__init__(spec)

    def forward(self, hidden, attention_mask=None, *, cu_seqlens=None):
        return hidden[:, 0] if cu_seqlens is None else hidden[cu_seqlens[:-1].long()]


def test_options_that_validate_nothing_fail(registry: Registry) -> None:
    registry.register("pooler", "loose", LoosePooler, plugin="bad", options=LooseOptions)
    failed = failures(check_component("pooler", "bad:loose", registry=registry, raise_on_failure=False))
    assert list(failed) == ["options-wrong-type"]
    assert "annotate the options with types" in failed["options-wrong-type"]


def test_given_options_are_validated_first(registry: Registry) -> None:
    with pytest.raises(SpecError, match=r"cannot check head bertzoo:sequence-classification|num_labels"):
        check_component("head", "sequence-classification", options={"num_labels": 0}, registry=registry,
                        raise_on_failure=True)


def test_case_failure_names_an_unexpected_exception(registry: Registry) -> None:
    case = component_cases("pooler", "bertzoo:mean", registry=registry)[0]
    broken = type(case)(case.kind, case.component, case.name, lambda: 1 / 0)
    with pytest.raises(ConformanceFailure, match=r"pooler bertzoo:mean, case .*: raised ZeroDivisionError"):
        broken.run()


# -- plugins and the pytest plugin ------------------------------------------------------------------------


def test_unknown_plugin_says_how_to_install() -> None:
    with pytest.raises(ConformanceError, match=r"no installed plugin is called 'nope'.*pip install -e \."):
        check_plugin("nope")


BROKEN_PLUGIN = '''
from typing import Any
import torch.nn.functional as F
from torch import nn
from bertzoo import hookimpl

bertzoo_plugin_api = ">=1,<2"

class NoPadding(nn.Module):
    def __init__(self, spec: Any = None) -> None:
        super().__init__()
    def forward(self, q, k, v, *, mask, dropout_p=0.0, scale=None, need_weights=False, head_mask=None):
        if need_weights or head_mask is not None or q.dim() != 4 or k.shape[-2] != q.shape[-2] or mask.query_offset:
            from bertzoo.errors import IncompatibleComponentError
            raise IncompatibleComponentError("packed cross-attention cache weights head_mask")
        return F.scaled_dot_product_attention(q, k, v, scale=scale), None

@hookimpl
def bertzoo_register(registry: Any) -> None:
    registry.register("attention", "nopad", "bzkit_broken:NoPadding", description="broken on purpose",
                      capabilities={"devices": ["cpu"], "dtypes": ["float32"]})
'''


@pytest.mark.slow
def test_pytest_plugin_generates_one_test_per_case_and_reports_the_difference(tmp_path: Path) -> None:
    (tmp_path / "bzkit_broken.py").write_text(textwrap.dedent(BROKEN_PLUGIN))
    dist = tmp_path / "bertzoo_kitbroken-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bertzoo-kitbroken\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[bertzoo]\nkitbroken = bzkit_broken\n")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTZOO_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--bertzoo-conformance=kitbroken",
         "-k", "padding or choose", "-rf"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    out = run.stdout
    assert run.returncode == 1, out + run.stderr
    assert "bertzoo-conformance/attention/kitbroken:nopad/padding[right,fp32]" in out
    assert "attention kitbroken:nopad, case padding[right,fp32]: context differs from the reference: max |diff|" in out
    assert "padding[none,fp32]" not in out.split("short test summary")[1]  # that case passes
    summary = out.strip().splitlines()[-1]
    assert "2 failed" in summary and "passed" in summary and "deselected" in summary


# -- reference hooks, fix hints, setup failures ------------------------------------------------------------


def alibi_bias(query: torch.Tensor, key: torch.Tensor, query_offset: int) -> torch.Tensor:
    """ALiBi: ``-slope[h] * |i + offset - j|`` → ``(1, h, S, S_k)``."""
    heads, s_q, s_k = query.shape[1], query.shape[-2], key.shape[-2]
    slopes = 2.0 ** (-8.0 * torch.arange(1, heads + 1, dtype=torch.float64) / heads)
    distance = (torch.arange(s_q)[:, None] + query_offset - torch.arange(s_k)[None, :]).abs()
    return -(slopes[:, None, None] * distance)[None]


class AlibiAttention(nn.Module):
    """SDPA plus an ALiBi position bias: correct, but not plain attention."""

    def __init__(self, spec: Any = None) -> None:
        super().__init__()

    def forward(self, q, k, v, *, mask, dropout_p=0.0, scale=None, need_weights=False, head_mask=None):
        from bertzoo.errors import IncompatibleComponentError, InputError
        from bertzoo.model.masks import boolean_mask, empty_rows

        if q.dim() != 4:
            raise InputError("packed input is not supported")
        if need_weights or head_mask is not None or mask.query_offset or q.shape[-2] != k.shape[-2]:
            raise IncompatibleComponentError("no weights, head_mask, cache or cross-attention")
        bias = alibi_bias(q, k, 0).to(q.dtype)
        allowed = boolean_mask(mask, q.shape[-2], k.shape[-2], q.device)
        if allowed is not None:
            bias = bias.masked_fill(~allowed, float("-inf"))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
        empty = empty_rows(mask, q.shape[-2], k.shape[-2], q.device)
        return (out if empty is None else out.masked_fill(empty, 0.0)), None


ALIBI_CAPS = {"devices": ("cpu",), "dtypes": ("float32", "bfloat16"), "causal": True}


def test_score_bias_lets_a_position_biased_attention_be_checked(registry: Registry) -> None:
    registry.register("attention", "alibi", AlibiAttention, plugin="ok", capabilities=ALIBI_CAPS,
                      conformance={"score_bias": alibi_bias})
    report = check_component("attention", "ok:alibi", registry=registry)  # the hook comes from the registration
    assert "padding[left,bf16]" in {c.rsplit("/", 1)[1] for c in report.passed}
    registry.register("attention", "alibi-undescribed", AlibiAttention, plugin="ok", capabilities=ALIBI_CAPS)
    failed = failures(check_component("attention", "ok:alibi-undescribed", registry=registry, raise_on_failure=False))
    assert "padding[none,fp32]" in failed and "causal[full,fp32]" in failed
    assert "describe it to the kit with visible= / score_bias=" in failed["padding[none,fp32]"]
    q, k, v = (torch.randn(1, 2, 3, 4, dtype=torch.float64) for _ in range(3))
    from bertzoo.interfaces import AttentionMask

    _, probs = attention_reference(q, k, v, AttentionMask(), 0.5, score_bias=alibi_bias)
    want = torch.softmax(q @ k.transpose(-1, -2) * 0.5 + alibi_bias(q, k, 0), dim=-1)
    torch.testing.assert_close(probs, want)


class CannotBuild(nn.Module):
    def __init__(self, spec: Any = None) -> None:
        raise RuntimeError("this pooler needs a GPU driver")


def test_a_component_that_cannot_be_built_gets_one_setup_failure_and_its_other_cases_skipped(
    registry: Registry,
) -> None:
    registry.register("pooler", "unbuildable", CannotBuild, plugin="bad")
    registry.register("attention", "unimportable", "bertzoo_no_such_module:Attention", plugin="bad",
                      capabilities=ALIBI_CAPS)
    for kind, name in (("pooler", "bad:unbuildable"), ("attention", "bad:unimportable")):
        report = check_component(kind, name, registry=registry, raise_on_failure=False)
        assert list(failures(report)) == ["setup"] and not report.passed and len(report.skipped) >= 5
        assert all(why.startswith("setup failed (") for why in report.skipped.values())
    assert "needs a GPU driver" in failures(check_component(
        "pooler", "bad:unbuildable", registry=registry, raise_on_failure=False))["setup"]


def test_one_broken_component_does_not_stop_the_rest_of_its_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    import bertzoo.testing as kit

    class Info:
        components = ["attention:broken:gone", "pooler:bertzoo:mean"]

    monkeypatch.setattr(kit, "find_plugin", lambda plugin: Info())
    cases = kit.plugin_cases("broken")
    assert cases[0].id == "attention/broken:gone/setup" and len(cases) > 5
    report = kit.run_cases(cases, raise_on_failure=False)
    assert list(report.failed) == ["attention/broken:gone/setup"]
    assert "unknown attention 'broken:gone'" in report.failed["attention/broken:gone/setup"]
    assert "pooler/bertzoo:mean/packed-input" in report.passed
