"""The CPU-performance module: nothing at import, caps applied on first use, a user's value wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from bertzoo.plugins import cpu_perf

CAPS = tuple(cpu_perf.ONEDNN_CACHE_CAPS)

SCRIPT = """
import os, torch
import bertzoo
from bertzoo.plugins import cpu_perf, eager, flash, sdpa, activations  # every built-in plugin module
cpu_perf.ONEDNN_LINEAR = True  # the oneDNN path on any CPU (by default only where torch reports AVX-512)
model = bertzoo.build("bert-tiny", num_hidden_layers=1).eval()
caps = {name: os.environ.get(name) for name in cpu_perf.ONEDNN_CACHE_CAPS}
print("after import and build:", caps)
assert all(v in (None, "16") for v in caps.values()), caps
with torch.no_grad():
    model(torch.ones(1, 4, dtype=torch.long))
print("after a forward:", {name: os.environ.get(name) for name in cpu_perf.ONEDNN_CACHE_CAPS})
"""


def run(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr[-2000:])
    return done.stdout


@pytest.mark.skipif(not cpu_perf.ONEDNN_AVAILABLE, reason="this torch build has no oneDNN linear, so no caps to apply")
def test_no_environment_change_at_import_caps_on_first_use_and_the_user_wins() -> None:
    clean = {k: v for k, v in os.environ.items() if k not in CAPS}
    out = run(clean)
    assert "after a forward: {'LRU_CACHE_CAPACITY': '8', 'ONEDNN_PRIMITIVE_CACHE_CAPACITY': '8'}" in out, out
    out = run({**clean, "LRU_CACHE_CAPACITY": "16"})
    assert "'LRU_CACHE_CAPACITY': '16', 'ONEDNN_PRIMITIVE_CACHE_CAPACITY': '8'}" in out.splitlines()[-1], out


def test_linear_equals_the_module_in_every_dtype() -> None:
    layer = torch.nn.Linear(24, 40)
    x = torch.randn(3, 5, 24)
    for dtype in (torch.float32, torch.bfloat16, torch.float64):
        lay, inp = layer.to(dtype), x.to(dtype)
        with torch.no_grad():
            atol = 1e-5 if dtype != torch.bfloat16 else 5e-2
            torch.testing.assert_close(cpu_perf.linear(inp, lay), lay(inp), atol=atol, rtol=0)
