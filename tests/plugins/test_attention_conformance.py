"""Conformance of every registered attention implementation against the eager definition.

The cases are the conformance kit's (:mod:`bertzoo.testing.attention`, the same ones a plugin
author runs with ``pytest --bertzoo-conformance=PLUGIN``): the eager definition written out in
float64 is the oracle, so ``bertzoo:eager`` is checked by the same cases as the fast ones. Every
capability an implementation declares is exercised; every one it does not declare must be
refused, both by :func:`bertzoo.selection.choose` and by the call itself, with an
:class:`IncompatibleComponentError`. Comparisons are on real query positions only (DESIGN.md).
Tolerances (:data:`bertzoo.testing.TOLERANCES`): fp32 1e-5 absolute; bf16/fp16 2e-2. CUDA cases
run when a GPU is visible.
"""

from __future__ import annotations

import pytest

from bertzoo.discovery import get_registry
from bertzoo.selection import Request, choose
from bertzoo.testing import component_cases

REGISTRY = get_registry()
NAMES = REGISTRY.list_components("attention")
CASES = [case for name in NAMES for case in component_cases("attention", name, registry=REGISTRY)]


@pytest.mark.parametrize("case", CASES, ids=[case.id.removeprefix("attention/") for case in CASES])
def test_conforms(case):
    if case.skip is not None:
        pytest.skip(case.skip)
    case.run()  # raises ConformanceFailure naming the implementation, the case and the measured difference


def test_every_implementation_has_its_cases():
    for name in NAMES:
        cases = {c.name for c in CASES if c.component == name}
        caps = REGISTRY.get("attention", name).capabilities
        assert "padding[right,fp32]" in cases and "choose-refuses-undeclared-devices-dtypes" in cases
        assert ("packed[bidirectional,fp32]" in cases) == bool(caps.get("varlen"))
        assert ("refuses-packed" in cases) != bool(caps.get("varlen"))
        assert ("returns-weights" in cases) == bool(caps.get("returns_weights"))


def test_auto_prefers_fast_and_falls_back_for_weights():
    assert choose(REGISTRY, Request()).record.full_name == "bertzoo:sdpa"
    assert choose(REGISTRY, Request(varlen=True)).record.full_name == "bertzoo:flash"
    assert choose(REGISTRY, Request(kv_cache=True, causal=True)).record.full_name == "bertzoo:sdpa"
    assert choose(REGISTRY, Request(returns_weights=True)).record.full_name == "bertzoo:eager"
    assert choose(REGISTRY, Request(head_mask=True)).record.full_name == "bertzoo:eager"
    explained = choose(REGISTRY, Request(returns_weights=True)).explain()
    assert "bertzoo:sdpa: passed over: lacks returns-weights" in explained
