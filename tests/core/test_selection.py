"""``attention="auto"``: choice by declared capabilities, fallbacks, explicit-name checks, explanations."""

from __future__ import annotations

import pytest

from bertzoo.errors import IncompatibleComponentError
from bertzoo.registry import Registry
from bertzoo.selection import Request, choose, explain_attention, request_for, resolve_attention, unmet
from bertzoo.spec import ModelSpec

FAST = {"devices": ["cpu", "cuda"], "dtypes": ["float32", "bfloat16"], "causal": True, "dropout": True}
REFERENCE = {**FAST, "dtypes": ["float32", "bfloat16", "float16", "float64"], "returns_weights": True,
             "head_mask": True, "cross_attention": True, "kv_cache": True}


@pytest.fixture
def reg() -> Registry:
    r = Registry()
    r.register("attention", "eager", "x:Eager", plugin="bertzoo", capabilities=REFERENCE, priority=0)
    r.register("attention", "sdpa", "x:Sdpa", plugin="bertzoo", capabilities=FAST, priority=10)
    r.register("attention", "gpu-only", "x:Gpu", plugin="foo", capabilities={**FAST, "devices": ["cuda"]}, priority=100)
    r.register("attention", "undeclared", "x:U", plugin="foo")  # no capabilities, no priority
    return r


def test_request_for_a_spec() -> None:
    assert request_for(ModelSpec()) == Request()
    decoder = ModelSpec(is_decoder=True, add_cross_attention=True)
    req = request_for(decoder, device="cuda:1", dtype="torch.bfloat16", returns_weights=True)
    assert (req.device, req.dtype) == ("cuda", "bfloat16")
    assert req.needs() == {"causal": True, "cross_attention": True, "kv_cache": True, "returns_weights": True}
    assert not request_for(ModelSpec(is_decoder=True, use_cache=False)).kv_cache


def test_auto_picks_the_highest_priority_able(reg: Registry) -> None:
    choice = choose(reg, Request())
    assert choice.auto and choice.record.full_name == "bertzoo:sdpa"  # gpu-only cannot run on cpu
    assert choice.reasons["foo:gpu-only"] == "passed over: lacks device cpu (supports cuda)"
    assert choose(reg, Request(device="cuda")).record.full_name == "foo:gpu-only"


def test_auto_falls_back_for_a_needed_capability(reg: Registry) -> None:
    choice = choose(reg, Request(returns_weights=True))
    assert choice.record.full_name == "bertzoo:eager"
    assert choice.reasons["bertzoo:sdpa"] == "passed over: lacks returns-weights"
    assert choose(reg, Request(dtype="float16")).record.full_name == "bertzoo:eager"


def test_undeclared_capabilities_count_as_absent(reg: Registry) -> None:
    record = reg.get("attention", "undeclared")
    assert unmet(record, Request()) == []  # the default devices and dtypes
    assert unmet(record, Request(device="mps", causal=True)) == ["device mps (supports cpu, cuda)", "causal"]


def test_named_attention_is_checked_not_replaced(reg: Registry) -> None:
    choice = choose(reg, Request(), "sdpa")
    assert not choice.auto and choice.record.full_name == "bertzoo:sdpa"
    with pytest.raises(IncompatibleComponentError) as info:
        choose(reg, Request(returns_weights=True, head_mask=True), "sdpa")
    msg = str(info.value)
    assert "attention 'bertzoo:sdpa' cannot serve this request: it lacks returns-weights, head-mask" in msg
    assert "use attention='auto' or one of: bertzoo:eager" in msg


def test_nothing_able_says_why_for_each(reg: Registry) -> None:
    with pytest.raises(IncompatibleComponentError) as info:
        choose(reg, Request(device="tpu"))
    msg = str(info.value)
    assert msg.startswith("no registered attention can serve this request")
    assert "bertzoo:sdpa: passed over: lacks device tpu" in msg and "bertzoo plugins" in msg
    with pytest.raises(IncompatibleComponentError, match="no registered attention"):
        choose(Registry(), Request())


def test_explain(reg: Registry) -> None:
    spec = ModelSpec(is_decoder=True)
    record, choice = resolve_attention(spec, reg)
    assert record.full_name == "bertzoo:eager"  # only eager declares a KV cache
    text = explain_attention(spec, reg)
    assert text == choice.explain()
    lines = text.splitlines()
    assert lines[0] == "attention: bertzoo:eager (auto)"
    assert lines[1] == "  request: device=cpu dtype=float32 needs=causal,kv_cache"
    assert "  bertzoo:eager: chosen: highest priority (0) able to serve it" in lines
    assert "  bertzoo:sdpa: passed over: lacks kv-cache" in lines
    named = resolve_attention(ModelSpec.model_validate({"components": {"attention": "eager"}}), reg)[1]
    assert named.explain().splitlines()[0] == "attention: bertzoo:eager (named in the spec)"


def test_auto_never_picks_an_attention_that_opts_out() -> None:
    from bertzoo.errors import IncompatibleComponentError
    from bertzoo.registry import Registry
    from bertzoo.selection import Request, choose

    reg = Registry()
    reg.register("attention", "local", "x:y", plugin="t", capabilities={"devices": ("cpu",), "dtypes": ("float32",)},
                 priority=100, auto=False)
    with pytest.raises(IncompatibleComponentError, match="opts out of automatic choice"):
        choose(reg, Request())
    assert choose(reg, Request(), "local").record.full_name == "t:local"
