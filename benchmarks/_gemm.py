"""The achievable GEMM speed on a model's own shapes: the denominator of every MFU the benchmarks print.

An encoder layer on a packed batch of ``T`` real tokens runs six GEMMs: query, key, value and
the attention output (``T × H → H`` each), the FFN up projection (``T × H → I``, exact GELU
fused) and down projection (``T × I → H``). :func:`layer_gemms` lists them for each batch the
model really runs; :func:`gemm_probe` returns callables that run exactly that list once through
one CPU GEMM library:

- ``matmul``: ``torch.addmm`` on the transposed weight (MKL's sgemm in fp32: what ``F.linear``
  and transformers' layers use);
- ``onednn``: ``torch.ops.mkldnn._linear_pointwise`` with bias (and GELU on the up projection),
  the call bertzoo's layers make in inference (``bertzoo.plugins.cpu_perf.linear``).

The achievable FLOP/s is the model's linear FLOPs divided by the faster probe's time, timed
interleaved with the model so both see the same machine. An MFU against it can exceed 100% only
through timing noise: the model runs the same GEMMs plus attention, LayerNorm and the rest.

Why not one big GEMM: the earlier probe timed a single ``[2048, H] x [H, 4H]`` GEMM with a fresh
weight per call; the model's GEMMs, with their real token counts and oneDNN's cached weight
reorders, ran faster than that, so the printed MFU read 97-113%.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Gemm:
    """``tokens × inputs → outputs`` with bias (and GELU when ``gelu``), run ``count`` times per pass."""

    tokens: int
    inputs: int
    outputs: int
    gelu: bool = False
    count: int = 1

    @property
    def flops(self) -> float:
        return 2.0 * self.tokens * self.inputs * self.outputs * self.count


def layer_gemms(token_counts: list[int], hidden: int, intermediate: int, layers: int) -> list[Gemm]:
    """The linear layers of ``layers`` encoder layers over packed batches of ``token_counts`` real tokens."""
    out: list[Gemm] = []
    for t in token_counts:
        out += [Gemm(t, hidden, hidden, count=4 * layers),  # query, key, value, attention output
                Gemm(t, hidden, intermediate, gelu=True, count=layers),
                Gemm(t, intermediate, hidden, count=layers)]
    return out


def linear_flops(gemms: list[Gemm]) -> float:
    return sum(g.flops for g in gemms)


def gemm_probe(gemms: list[Gemm], dtype: torch.dtype = torch.float32, seed: int = 0) -> dict[str, Callable[[], None]]:
    """library name -> callable running every GEMM of ``gemms`` once (``count`` times each).

    One weight per ``(inputs, outputs)`` pair, as in the model (its layers share shapes, not
    weights, but a weight of the same shape costs the same); activations are allocated up front.
    """
    g = torch.Generator().manual_seed(seed)
    weights: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}
    inputs: dict[tuple[int, int], Tensor] = {}
    for x in gemms:
        if (x.inputs, x.outputs) not in weights:
            w = (torch.randn(x.outputs, x.inputs, generator=g) * x.inputs ** -0.5).to(dtype)
            weights[(x.inputs, x.outputs)] = (w, torch.zeros(x.outputs, dtype=dtype))
        if (x.tokens, x.inputs) not in inputs:
            inputs[(x.tokens, x.inputs)] = torch.randn(x.tokens, x.inputs, generator=g).to(dtype)

    def matmul() -> None:
        with torch.inference_mode():
            for x in gemms:
                w, b = weights[(x.inputs, x.outputs)]
                a = inputs[(x.tokens, x.inputs)]
                for _ in range(x.count):
                    y = torch.addmm(b, a, w.t())
                    if x.gelu:
                        torch.ops.aten.gelu_(y)

    probes: dict[str, Callable[[], None]] = {"matmul": matmul}
    onednn_ok = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    if onednn_ok and (dtype == torch.float32 or torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        def onednn() -> None:
            with torch.inference_mode():
                for x in gemms:
                    w, b = weights[(x.inputs, x.outputs)]
                    a = inputs[(x.tokens, x.inputs)]
                    for _ in range(x.count):
                        torch.ops.mkldnn._linear_pointwise(a, w, b, "gelu" if x.gelu else "none", [],
                                                           "none" if x.gelu else "")
        probes["onednn"] = onednn
    return probes
