"""Resource limits: estimate a model's size from its spec and refuse absurd ones before allocating.

Fields are validated one by one, so ``num_hidden_layers: 1000000000`` is a valid spec; building
it would allocate until the machine dies. The factory (``assemble``) and ``from_pretrained`` call
:func:`check_size` first. The estimate counts a standard BERT trunk (embeddings, layers with
self- and cross-attention, pooler): components from plugins may differ a little, and a head adds
at most a vocabulary projection. No torch here (contracts layer).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bertzoo.errors import SpecError

MAX_PARAMETERS_ENV = "BERTZOO_MAX_PARAMETERS"
MAX_LAYERS_ENV = "BERTZOO_MAX_LAYERS"
# 10 B parameters (40 GB of float32 weights): above every published BERT-family encoder.
DEFAULT_MAX_PARAMETERS = 10_000_000_000
# Each layer costs Python objects (~40 KiB measured) whatever its sizes, so a deep stack of
# tiny layers exhausts memory below any parameter limit.
DEFAULT_MAX_LAYERS = 1_000
LAYER_OVERHEAD_BYTES = 40 * 1024

_GIB = 1024**3


@dataclass(frozen=True)
class SizeEstimate:
    """What building a spec will cost, before anything is allocated."""

    parameters: int
    layers: int
    bytes_per_parameter: int = 4

    @property
    def memory_bytes(self) -> int:
        """Weights at ``bytes_per_parameter`` plus the per-layer module overhead."""
        return self.parameters * self.bytes_per_parameter + self.layers * LAYER_OVERHEAD_BYTES

    def describe(self) -> str:
        return f"about {self.parameters:,} parameters ({self.memory_bytes / _GIB:,.1f} GiB)"


def estimate_size(spec: Any, *, bytes_per_parameter: int = 4) -> SizeEstimate:
    """Parameters of the standard trunk ``spec`` describes (exact for bertzoo's built-in components)."""
    h, i = spec.hidden_size, spec.intermediate_size
    layer_norm = 2 * h
    e = getattr(spec, "embedding_size", None) or h  # narrower embeddings (ELECTRA, ALBERT) project to h
    embeddings = (spec.vocab_size + spec.max_position_embeddings + spec.type_vocab_size) * e + 2 * e
    if e != h:
        embeddings += e * h + h
    attention = 4 * (h * h + h) + layer_norm  # query, key, value, output projection; its LayerNorm
    feed_forward = (h * i + i) + (i * h + h) + layer_norm
    layer = attention * (2 if spec.add_cross_attention else 1) + feed_forward
    pooler = h * h + h if spec.components.pooler is not None else 0
    modules = getattr(spec, "num_layer_modules", spec.num_hidden_layers)  # shared layers count once
    parameters = embeddings + modules * layer + pooler
    return SizeEstimate(parameters, spec.num_hidden_layers, bytes_per_parameter)


def resolve_limit(value: int | None, env_name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    """The keyword if given, else the environment variable, else ``default``."""
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SpecError(f"a size limit must be a positive integer, got {value!r}")
        return value
    text = (os.environ if environ is None else environ).get(env_name, "").strip().replace("_", "")
    if not text:
        return default
    try:
        limit = int(text)
    except ValueError:  # 2e10 is a fine way to write it
        try:
            number = float(text)
        except ValueError:
            number = 0.0
        limit = int(number) if math.isfinite(number) and number == int(number) else 0
    if limit <= 0:
        raise SpecError(
            f"{env_name}={text!r} is not a positive integer; set it to a count such as 20000000000 (or 2e10), "
            "or unset it to use the default"
        )
    return limit


def check_size(
    spec: Any,
    *,
    max_parameters: int | None = None,
    max_layers: int | None = None,
    bytes_per_parameter: int = 4,
    source: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> SizeEstimate:
    """Refuse a spec whose model would be absurdly large, before anything is allocated.

    Args:
        spec: a validated :class:`~bertzoo.spec.ModelSpec`.
        max_parameters: the parameter limit; default ``BERTZOO_MAX_PARAMETERS`` or 10 B.
        max_layers: the layer limit; default ``BERTZOO_MAX_LAYERS`` or 1000.
        bytes_per_parameter: the weights' element size (4 for float32), for the memory estimate.
        source: what the spec came from, for the message (default: its ``name``).

    Raises:
        SpecError: the estimate exceeds a limit; the message gives the numbers and how to raise it.
    """
    estimate = estimate_size(spec, bytes_per_parameter=bytes_per_parameter)
    what = source or (f"spec {spec.name!r}" if spec.name else "the spec")
    layer_limit = resolve_limit(max_layers, MAX_LAYERS_ENV, DEFAULT_MAX_LAYERS, environ)
    if estimate.layers > layer_limit:
        raise SpecError(
            f"{what} asks for num_hidden_layers={estimate.layers:,} ({estimate.describe()}); the limit is "
            f"{layer_limit:,} layers. Check num_hidden_layers; if the model really is this deep, raise the limit "
            f"with max_layers=N or the environment variable {MAX_LAYERS_ENV}=N"
        )
    parameter_limit = resolve_limit(max_parameters, MAX_PARAMETERS_ENV, DEFAULT_MAX_PARAMETERS, environ)
    if estimate.parameters > parameter_limit:
        sizes = ", ".join(
            f"{name}={getattr(spec, name):,}"
            for name in ("num_hidden_layers", "hidden_size", "intermediate_size", "vocab_size", "max_position_embeddings")
        )
        raise SpecError(
            f"{what} asks for {estimate.describe()}; the limit is {parameter_limit:,} parameters. Check its sizes "
            f"({sizes}); if the model really is this large, raise the limit with max_parameters=N or the "
            f"environment variable {MAX_PARAMETERS_ENV}=N"
        )
    return estimate
