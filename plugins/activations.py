"""THE activation table: HF ``ACT2FN``'s formulas, name for name, for layers and heads alike.

``hidden_act`` in a spec must be one of these names. The spec (a contract, no torch) keeps only
the names, :data:`bertzoo.spec.ACTIVATIONS`; a test checks that they equal this table's keys.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from bertzoo.errors import SpecError


def gelu_new(x: Tensor) -> Tensor:
    """tanh approximation as in Google's BERT / OpenAI GPT (HF ``NewGELUActivation``)."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gelu_fast(x: Tensor) -> Tensor:
    """HF ``FastGELUActivation``: the tanh approximation with a rounded constant."""
    return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def gelu_python(x: Tensor) -> Tensor:
    """Exact erf GELU written out (HF ``gelu_python``)."""
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def quick_gelu(x: Tensor) -> Tensor:
    return x * torch.sigmoid(1.702 * x)


def gelu_pytorch_tanh(x: Tensor) -> Tensor:
    """torch's fused tanh approximation (not bitwise ``gelu_new``)."""
    return F.gelu(x, approximate="tanh")


def identity(x: Tensor) -> Tensor:
    return x


ACT2FN: dict[str, Callable[[Tensor], Tensor]] = {  # in the order of bertzoo.spec.ACTIVATIONS
    "gelu": F.gelu,  # exact erf GELU
    "gelu_new": gelu_new,
    "gelu_pytorch_tanh": gelu_pytorch_tanh,
    "gelu_fast": gelu_fast,
    "quick_gelu": quick_gelu,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "gelu_python": gelu_python,
    "mish": F.mish,
    "linear": identity,
}


def get_activation(name: str) -> Callable[[Tensor], Tensor]:
    """The activation called ``name`` (a ``hidden_act`` value).

    Raises:
        SpecError: unknown name (a validated spec never has one; this guards hand-made specs).
    """
    try:
        return ACT2FN[name]
    except KeyError:
        raise SpecError(f"unknown activation {name!r} (hidden_act); use one of {', '.join(ACT2FN)}") from None
