"""Compute precisions (kind ``precision``): float32, bfloat16 matmuls and int8 matmuls for the trunk's Linear layers.

Each precision is a class with ``apply(model, *, calibrate=None)`` (the Precision protocol of
:mod:`bertzoo.interfaces`), registered by :mod:`bertzoo.plugins.register_precisions` as
``bertzoo:float32``, ``bertzoo:bfloat16`` and ``bertzoo:int8``; the main job resolves
``compute=`` (and the older ``dtype=`` / ``quantize=``) through the registry. ``bfloat16`` and
``int8`` swap the encoder's ``nn.Linear`` layers for a module that multiplies in low precision
and returns float32, so the residual stream, LayerNorm, attention and pooling stay in float32.
The matmuls are where the time goes; the float32 remainder is what keeps the embeddings close
to fp32's.

int8

Why not ``torch.ao.quantization.quantize_dynamic``: it quantises each activation tensor with one
scale, and BERT's hidden states have a few channels with outliers (tens of times the typical
value), so every other channel is left with a handful of levels. On all-MiniLM-L6-v2 over 300
real paragraphs its embeddings reach a cosine of only 0.897 min / 0.941 mean to fp32 (0.954 /
0.976 with per-channel weights; keeping every FFN output layer in fp32 still gives 0.966 min).
It is also deprecated in torch ≥ 2.10 in favour of torchao.

:class:`Int8Linear` keeps a scale per *token* (row) for activations, computed on the fly
(symmetric, ``absmax / 127``), and a scale per output channel for weights, multiplies int8 × int8
into int32 with ``torch._int_mm`` (VNNI / AMX kernels on x86), and rescales in fp32. Outlier
channels then cost precision only in their own rows' scale, not the whole batch's: cosine 0.994
min / 0.998 mean on the same texts. No calibration data is needed.

Only the trunk's encoder layers are quantised (``bert.encoder.*``): embeddings, the pooler and
task heads stay fp32 (the masked-lm decoder is a 30k-row projection whose top-k order is
sensitive, and it runs only at mask positions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertzoo.errors import InputError

logger = logging.getLogger(__name__)


def _int_mm_works() -> bool:
    """Whether this torch build multiplies int8 matrices on the CPU (``torch._int_mm``)."""
    try:
        a = torch.ones(17, 8, dtype=torch.int8)
        b = torch.ones(8, 8, dtype=torch.int8)
        return bool(torch._int_mm(a, b)[0, 0].item() == 8)
    except (RuntimeError, AttributeError):
        return False


class BFloat16Linear(nn.Module):
    """``y = x Wᵀ + b`` multiplied in bfloat16 (AVX512-BF16 / AMX kernels), returned in float32.

    Holding the whole model in bf16 rounds the residual stream and LayerNorm inputs too: on
    all-MiniLM-L6-v2 that gives a cosine of 0.99984 to fp32 on short texts ("ok"), below the
    0.9999 target; bf16 matmuls with a float32 remainder give 0.99992 at nearly the same speed.

    Shapes: input ``(..., in)`` → output ``(..., out)`` float32.
    """

    weight: Tensor
    bias: Tensor | None

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", linear.weight.detach().to(torch.bfloat16))
        bias = linear.bias.detach().to(torch.bfloat16) if linear.bias is not None else None
        self.register_buffer("bias", bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bfloat16 matmul"

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x.to(torch.bfloat16), self.weight, self.bias).float()


class Int8Linear(nn.Module):
    """``y = x Wᵀ + b`` with int8 weights (per output channel) and int8 activations (per token).

    Args:
        linear: the float ``nn.Linear`` to quantise (its weights are copied, not kept).

    Shapes: input ``(..., in)`` float → output ``(..., out)`` in the input's dtype.
    """

    qweight_t: Tensor
    weight_scale: Tensor
    bias: Tensor | None
    smooth: Tensor | None

    def __init__(self, linear: nn.Linear, input_absmax: Tensor | None = None, alpha: float = 0.5) -> None:
        super().__init__()
        weight = linear.weight.detach().float()  # (out, in)
        smooth = None
        if input_absmax is not None:
            # SmoothQuant: x W^T = (x / s)(W s)^T; s_j = max|x_j|^a / max|W_:,j|^(1-a) moves outliers into W
            w_max = weight.abs().amax(dim=0).clamp(min=1e-5)  # (in,)
            s = (input_absmax.float().clamp(min=1e-5) ** alpha / w_max ** (1 - alpha)).clamp(min=1e-5)
            weight = weight * s
            smooth = 1.0 / s
        scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0  # (out,)
        qweight = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("qweight_t", qweight.t().contiguous())  # (in, out) int8: _int_mm's layout
        self.register_buffer("weight_scale", scale)  # (out,)
        bias = linear.bias.detach().float() if linear.bias is not None else None
        self.register_buffer("bias", bias)
        self.register_buffer("smooth", smooth)  # (in,) 1/s, or None

    def extra_repr(self) -> str:
        smooth = ", smoothed" if self.smooth is not None else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-token/per-channel{smooth}"

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).float()  # (M, in)
        if self.smooth is not None:
            x2 = x2 * self.smooth
        # absmax per row without an |x| temporary (large temporaries cost page faults on every call)
        x_scale = torch.linalg.vector_norm(x2, float("inf"), dim=1, keepdim=True).clamp_(min=1e-8).div_(127.0)
        xq = torch.div(x2, x_scale).round_().to(torch.int8)  # (M, in)
        if xq.shape[0] <= 16:
            # _int_mm wants more than 16 rows on some backends; tiny batches are cheap in fp32 anyway
            y = (xq.float() @ self.qweight_t.float()).mul_(self.weight_scale)
        else:
            y = torch.mul(torch._int_mm(xq, self.qweight_t), self.weight_scale)  # (M, out) int32 → fp32, one pass
        y.mul_(x_scale)
        if self.bias is not None:
            y.add_(self.bias)
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)


def _prefix_for(model: nn.Module, prefix: str) -> str:
    if not isinstance(getattr(model, "bert", None), nn.Module) and prefix.startswith("bert."):
        return prefix[len("bert."):]  # a bare trunk: its layers are at encoder.*
    return prefix


def _swap_linears(model: nn.Module, make: Callable[[str, nn.Linear], nn.Module], prefix: str,
                  skip: tuple[str, ...]) -> int:
    prefix = _prefix_for(model, prefix)
    count = 0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and full.startswith(prefix) and not any(s in full for s in skip):
                setattr(module, child_name, make(full, child))
                count += 1
    return count


def cast_linear_bf16(model: nn.Module, *, prefix: str = "bert.encoder.", skip: tuple[str, ...] = ()) -> nn.Module:
    """Replace the ``nn.Linear`` layers under ``prefix`` with :class:`BFloat16Linear`, in place.

    Raises:
        InputError: the model is not in float32.
    """
    param = next(model.parameters())
    if param.dtype != torch.float32:
        raise InputError(f"bf16 matmuls start from float32 weights, got {param.dtype}; load with dtype='float32'")
    count = _swap_linears(model, lambda _, linear: BFloat16Linear(linear), prefix, skip)
    logger.info("%d Linear layers multiply in bfloat16", count)
    return model


# Calibration text for the smoothing factors: short and long, prose, code, numbers, other scripts.
# Only the per-channel maximum of each layer's input is taken from it.
CALIBRATION_TEXTS: tuple[str, ...] = (
    "", "ok", "Hello world!", "What is the capital of France?",
    "The quick brown fox jumps over the lazy dog.",
    "Transformers use attention to mix information across the tokens of a sequence.",
    "I can't believe it's not butter!", "Stock prices fell sharply on Tuesday after the announcement.",
    "def foo(x): return x + 1", "Das ist ein deutscher Satz.", "1 2 3 4 5 6 7 8 9 10",
)


def input_absmax(model: nn.Module, run: Callable[[], object], *, prefix: str = "bert.encoder.") -> dict[str, Tensor]:
    """Per-channel ``max |x|`` of the input of every ``nn.Linear`` under ``prefix`` while ``run()`` runs.

    Returns:
        qualified name → ``(in_features,)`` tensor.
    """
    prefix = _prefix_for(model, prefix)
    stats: dict[str, Tensor] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name.startswith(prefix):
            def hook(_: nn.Module, args: tuple[Tensor, ...], name: str = name) -> None:
                x = args[0].detach()
                absmax = x.reshape(-1, x.shape[-1]).abs().amax(dim=0).float()
                stats[name] = torch.maximum(stats[name], absmax) if name in stats else absmax
            hooks.append(module.register_forward_pre_hook(hook))
    try:
        run()
    finally:
        for handle in hooks:
            handle.remove()
    return stats


def quantize_int8(model: nn.Module, *, calibrate: Callable[[], object] | None = None, alpha: float = 0.5,
                  prefix: str = "bert.encoder.", skip: tuple[str, ...] = ()) -> nn.Module:
    """Replace the ``nn.Linear`` layers under ``prefix`` with :class:`Int8Linear`, in place.

    Args:
        model: a head model (trunk at ``.bert``) or a trunk.
        calibrate: runs the float model on some text (e.g. :data:`CALIBRATION_TEXTS`); each layer's
            input channel maxima then set SmoothQuant factors (``alpha`` = migration strength).
            Without it, no smoothing: on all-MiniLM-L6-v2, cosine to fp32 drops from 0.995 to
            0.984 min on very short texts (0.998 → 0.997 on paragraphs).
        prefix: only Linear layers whose qualified name starts with this are quantised.
        skip: substrings of qualified names to keep in float (sensitive layers).

    Returns:
        ``model`` (CPU inference only; the int8 buffers are not a checkpoint format).

    Raises:
        InputError: the model is not on the CPU or in float32, or this torch cannot multiply int8 matrices.
    """
    param = next(model.parameters())
    if param.device.type != "cpu":
        raise InputError(f"int8 quantisation runs on the CPU; the model is on {param.device}: drop device= or pick "
                         "another compute precision")
    if param.dtype != torch.float32:
        raise InputError(f"int8 quantisation starts from float32 weights, got {param.dtype}; load with dtype='float32'")
    if not _int_mm_works():
        raise InputError(f"torch {torch.__version__} has no CPU int8 matmul (torch._int_mm); use dtype='bfloat16' instead")
    stats = input_absmax(model, calibrate, prefix=prefix) if calibrate is not None else {}

    def make(name: str, linear: nn.Linear) -> nn.Module:
        return Int8Linear(linear, stats.get(name), alpha)

    count = _swap_linears(model, make, prefix, skip)
    logger.info("quantised %d Linear layers to int8 (per-token activations, per-channel weights%s)", count,
                ", smoothed" if stats else "")
    return model


class SlowPrecisionWarning(UserWarning):
    """A compute precision runs on a CPU without native kernels for it: slower than float32, not faster."""


# measured per matmul on an AVX2-only CPU (MiniLM's FFN shape, 2048 tokens, one thread): bf16 9x and
# torch._int_mm 48x slower than float32 (docs/benchmarks.md, "Precisions on CPUs without native kernels")
_SLOWDOWN = {"bfloat16": ("AVX512-BF16 or AMX", 9), "int8": ("VNNI or AMX", 48)}


def missing_cpu_kernels(precision: str) -> str | None:
    """The instruction sets this CPU lacks for fast ``precision`` matmuls (None: it has them, or
    torch cannot tell)."""
    cpu = torch.cpu
    try:
        if precision == "bfloat16":
            native = cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported()
        elif precision == "int8":
            native = cpu._is_vnni_supported() or cpu._is_amx_tile_supported()
        else:
            return None
    except AttributeError:  # a torch without these probes: say nothing rather than guess
        return None
    return None if native else _SLOWDOWN[precision][0]


def warn_if_slow_on_cpu(model: nn.Module, precision: str) -> None:
    """Say, once per load, that ``precision`` will be slower than float32 on this CPU."""
    import warnings

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    missing = missing_cpu_kernels(precision)
    if device.type != "cpu" or missing is None:
        return
    factor = _SLOWDOWN[precision][1]
    warnings.warn(
        f"compute={precision!r} on this CPU ({torch.backends.cpu.get_cpu_capability()}, no {missing}) has no "
        f"native {precision} matmul kernels: about {factor}x slower per matmul than float32 here, not faster; "
        "use compute='float32' on this machine", SlowPrecisionWarning, stacklevel=2)


# -- the registered precisions (bertzoo.interfaces.Precision) ----------------------------------------
#: ``calibrate`` as the main job passes it: runs the float model on the texts it is given
Calibrate = Callable[[Sequence[str]], object]


class Float32Precision:
    """``bertzoo:float32``: the model as loaded, every matmul in float32 (the default)."""

    def apply(self, model: nn.Module, *, calibrate: Calibrate | None = None) -> nn.Module:
        return model


class BFloat16Precision:
    """``bertzoo:bfloat16``: the encoder's Linear layers multiply in bfloat16 (:class:`BFloat16Linear`);
    the residual stream, LayerNorm, attention, pooling and the head stay float32."""

    def apply(self, model: nn.Module, *, calibrate: Calibrate | None = None) -> nn.Module:
        warn_if_slow_on_cpu(model, "bfloat16")
        return cast_linear_bf16(model)


class Int8Precision:
    """``bertzoo:int8``: the encoder's Linear layers multiply in int8 (:class:`Int8Linear`, CPU only).

    With ``calibrate`` (the main job always passes it), the float model first runs on
    :data:`CALIBRATION_TEXTS` and each layer's input channel maxima set SmoothQuant factors.

    Args:
        alpha: SmoothQuant migration strength (0 = none, 1 = all of the outliers into the weights).
    """

    def __init__(self, *, alpha: float = 0.5) -> None:
        self.alpha = alpha

    def apply(self, model: nn.Module, *, calibrate: Calibrate | None = None) -> nn.Module:
        """Raises:
        InputError: the model is not on the CPU or not float32, or torch cannot multiply int8 matrices.
        """
        warn_if_slow_on_cpu(model, "int8")
        run = None if calibrate is None else (lambda: calibrate(CALIBRATION_TEXTS))
        return quantize_int8(model, calibrate=run, alpha=self.alpha)


__all__ = [
    "CALIBRATION_TEXTS", "BFloat16Linear", "BFloat16Precision", "Calibrate", "Float32Precision", "Int8Linear",
    "Int8Precision", "SlowPrecisionWarning", "cast_linear_bf16", "input_absmax", "missing_cpu_kernels",
    "quantize_int8", "warn_if_slow_on_cpu",
]
