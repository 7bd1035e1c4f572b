"""CPU performance tweaks for the eager layers: the oneDNN fast linear and the oneDNN cache caps.

Nothing happens at import: the caps are set the first time :func:`linear` takes the oneDNN path,
just before oneDNN's first use by bertzoo. The eager layers call :func:`linear` where they would
call ``layer(x)``; the result equals ``layer(x)`` within fp32 GEMM rounding, only faster.

Why oneDNN: inference on CPU runs the layer's ``nn.Linear`` through oneDNN (bias, and GELU when
asked, fused into the GEMM). ``F.linear`` sends fp32 to MKL's sgemm, which on the AMD EPYC this
project is measured on runs at 1/2-1/3 of oneDNN's speed (``benchmarks/encoder.py`` prints both
GEMM peaks); bf16 ``F.linear`` is oneDNN already. Rounding is that of any fp32 GEMM (~5e-6 vs
float64 on a 384-term dot product, as MKL). On CPUs without AVX-512 it is the other way round:
on a 2-core AVX2-only AMD EPYC, ``bertzoo.embed`` of 300 corpus paragraphs with all-MiniLM-L6-v2
took 4.33 s through oneDNN and 4.02 s through MKL (best of 4, alternated; ``benchmarks/mfu.py``
shows the same on the GEMMs alone), so oneDNN is used only where torch reports AVX-512. Set
:data:`ONEDNN_LINEAR` to force either way.

Why the caps: each new GEMM shape gets a oneDNN primitive (JIT code plus, for real weights, a
reordered weight copy: ~4 MB per entry for MiniLM) in two caches of 1024 entries (ideep's
``LRU_CACHE_CAPACITY``, oneDNN's ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``). Packed batches bring a new
token count almost every time, so the caches only fill, with no hits: MiniLM's RSS grew by 600 MB
over 250 batches even at 64 entries (``tests/e2e/test_stream_memory.py``,
``benchmarks/stream_memory.py``). 8 entries still hold a fixed-shape loop's few shapes (same speed
measured at 64, 16 and 4). Both are read at oneDNN's first use in the process, so a program that
ran oneDNN before bertzoo keeps its own sizes; a value the user set wins.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ONEDNN_AVAILABLE = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
# faster than MKL's sgemm on AVX-512 CPUs, slower on AVX2-only ones (see the module docstring)
ONEDNN_LINEAR = ONEDNN_AVAILABLE and torch.backends.cpu.get_cpu_capability().startswith("AVX512")
# oneDNN refuses bf16 GEMMs on CPUs without bf16 instructions ("could not create a primitive
# descriptor"); there bf16 runs as a module, as torch itself does.
ONEDNN_DTYPES = (torch.float32, torch.bfloat16) if ONEDNN_AVAILABLE and torch.ops.mkldnn._is_mkldnn_bf16_supported() \
    else (torch.float32,)
ONEDNN_CACHE_CAPS = {"LRU_CACHE_CAPACITY": "8", "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "8"}
_caps_applied = False


def apply_onednn_cache_caps() -> None:
    """Set :data:`ONEDNN_CACHE_CAPS` in the environment unless the user set them (once per process)."""
    global _caps_applied
    if not _caps_applied:
        for name, value in ONEDNN_CACHE_CAPS.items():
            os.environ.setdefault(name, value)
        _caps_applied = True


def linear(x: Tensor, layer: nn.Module, *, gelu: bool = False) -> Tensor:
    """``layer(x)``, then exact GELU when ``gelu``; ``(..., in)`` → ``(..., out)``.

    The oneDNN path is taken only where it changes nothing but speed: a plain ``nn.Linear``
    without hooks (LoRA wrappers, quantized layers and hooks run as modules), fp32 (and bf16 where
    the CPU has bf16 instructions) on CPU, no autograd graph to record, not under ``torch.compile`` (inductor fuses on its own).
    """
    if (
        ONEDNN_LINEAR
        and type(layer) is nn.Linear
        and not (layer._forward_hooks or layer._forward_pre_hooks)
        and x.device.type == "cpu"
        and x.dtype in ONEDNN_DTYPES
        and layer.weight.dtype == x.dtype
        and not (torch.is_grad_enabled() and (x.requires_grad or layer.weight.requires_grad))
        and not torch.compiler.is_compiling()
    ):
        if not _caps_applied:
            apply_onednn_cache_caps()
        return torch.ops.mkldnn._linear_pointwise(x, layer.weight, layer.bias, "gelu" if gelu else "none", [],
                                                  "none" if gelu else "")
    y = layer(x)
    if not gelu:
        return y
    return F.gelu(y) if y.requires_grad else torch.ops.aten.gelu_(y)  # in place: no second (.., I) buffer
