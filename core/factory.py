"""The factory: the only place that turns component names into objects.

``build(source, **overrides)`` takes a preset name, a spec file path, a dict or a
:class:`ModelSpec`, applies call-site overrides (they win), validates component options, and
assembles the model from registered components, torchtune style: the layer receives its
attention component, the trunk receives its embedding, layers and pooler, and a head receives
the trunk.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertzoo.discovery import registry_or_default
from bertzoo.errors import ComponentNotFoundError, SpecError
from bertzoo.limits import check_size
from bertzoo.registry import Registry
from bertzoo.spec import ModelSpec, apply_overrides, validate_components

if TYPE_CHECKING:
    from torch import nn


def resolve_spec(
    source: str | Path | Mapping[str, Any] | ModelSpec,
    overrides: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
) -> ModelSpec:
    """Turn any accepted ``source`` plus overrides into a fully validated spec.

    Raises:
        SpecError: unknown preset (with close matches), unreadable file, invalid fields or options.
    """
    reg = registry_or_default(registry)
    if isinstance(source, ModelSpec):
        spec = source
    elif isinstance(source, Mapping):
        spec = ModelSpec.from_data(source)
    elif isinstance(source, (str, Path)):
        spec = _spec_from_name_or_path(str(source), reg)
    else:
        raise SpecError(
            f"build() got a {type(source).__name__}; give a preset name, a spec file path, a dict or a ModelSpec"
        )
    if overrides:
        spec = apply_overrides(spec, overrides, reg)
    return validate_components(spec, reg)


def _spec_from_name_or_path(text: str, reg: Registry) -> ModelSpec:
    path = Path(text)
    if path.suffix.lower() in (".json", ".yaml", ".yml", ".toml") or path.is_file():
        return ModelSpec.load(path)
    try:
        record = reg.get("preset", text)
    except ComponentNotFoundError as exc:
        if not str(exc).startswith("unknown preset"):
            # ambiguous, or its plugin failed to load: that message says more than a list would
            raise SpecError(f"{text!r} is not a spec file, and as a preset: {exc}") from None
        presets = reg.list_components("preset")
        shorts = [p.split(":", 1)[1] for p in presets]
        close = difflib.get_close_matches(text, shorts, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "."
        extra = ""
        if "/" in text or path.is_dir():
            extra = (
                f" {text!r} looks like a checkpoint folder or hub id: load weights with "
                f"bertzoo.from_pretrained({text!r})."
            )
        raise SpecError(
            f"{text!r} is neither a preset nor a spec file{hint} Presets: {', '.join(shorts) or 'none'}.{extra}"
        ) from None
    data = record.load()
    if callable(data):  # a preset may be a function returning its spec data
        data = data()
    if isinstance(data, ModelSpec):
        return data
    if not isinstance(data, Mapping):
        raise SpecError(
            f"preset {record.full_name} (plugin {record.plugin!r}) is a {type(data).__name__}, not spec data; "
            "its plugin must register a dict, a ModelSpec or a function returning one"
        )
    return ModelSpec.from_data(data, source=f"preset {record.full_name}")


def build(
    source: str | Path | Mapping[str, Any] | ModelSpec = "bert-base-uncased",
    /,
    *,
    registry: Registry | None = None,
    max_parameters: int | None = None,
    max_layers: int | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a randomly initialised model.

    Example: ``build("bert-base-uncased", attention="sdpa", head="sequence-classification", num_labels=3)``.

    Args:
        source: preset name, spec file path (.yaml/.json/.toml), dict, or :class:`ModelSpec`.
        registry: a registry to build from (default: the installed plugins).
        max_parameters, max_layers: size limits checked before allocating (default: the
            ``BERTZOO_MAX_PARAMETERS`` / ``BERTZOO_MAX_LAYERS`` environment variables, else 10 B
            parameters and 1000 layers; see :mod:`bertzoo.limits`).
        **overrides: spec fields, component names (``attention="sdpa"``), dotted paths
            (``components.head.options.num_labels``) or bare component options (``num_labels``).

    Raises:
        SpecError (also for a model over the size limits, or one that does not fit in memory),
        ComponentNotFoundError, IncompatibleComponentError.
    """
    reg = registry_or_default(registry)
    spec = resolve_spec(source, overrides, reg)
    return assemble(spec, reg, max_parameters=max_parameters, max_layers=max_layers)


def assemble(spec: ModelSpec, registry: Registry | None = None, *, device: Any = None, dtype: Any = None,
             init: bool = True, max_parameters: int | None = None, max_layers: int | None = None) -> nn.Module:
    """Assemble a model from an already validated spec (random initialisation, HF's rules).

    ``init=False`` skips the initialisation (``from_pretrained`` builds on the meta device and
    initialises only what the checkpoint lacks). The size is checked first
    (:func:`bertzoo.limits.check_size`: ``max_parameters``, ``max_layers``), and running out of
    memory while allocating is a :class:`SpecError` with the estimate, not a raw traceback."""
    estimate = check_size(spec, max_parameters=max_parameters, max_layers=max_layers,
                          bytes_per_parameter=int(getattr(dtype, "itemsize", 4)))
    try:
        return _assemble(spec, registry, device=device, dtype=dtype, init=init)
    except (MemoryError, RuntimeError) as exc:
        if not _is_allocation_failure(exc):
            raise
        what = f"spec {spec.name!r}" if spec.name else "the spec"
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise SpecError(
            f"building {what} ran out of memory ({type(exc).__name__}: {first_line}); it needs {estimate.describe()}: "
            "use smaller sizes or a smaller dtype, or build on a machine or device with more memory"
        ) from None


def _accepts(target: Any, name: str) -> bool:
    """Whether ``target`` (a class or function) takes keyword ``name``."""
    try:
        return name in inspect.signature(target).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False


def _is_allocation_failure(exc: BaseException) -> bool:
    # torch reports a failed CPU allocation as a RuntimeError ("can't allocate memory") and a CUDA one
    # as OutOfMemoryError (a RuntimeError); other RuntimeErrors are bugs and keep their traceback.
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def _assemble(spec: ModelSpec, registry: Registry | None, *, device: Any, dtype: Any, init: bool) -> nn.Module:
    from bertzoo.model import BertModel, init_weights
    from bertzoo.selection import resolve_attention

    reg = registry_or_default(registry)
    comps = spec.components
    attention_record, _reason = resolve_attention(spec, reg, device=device, dtype=dtype)
    attention_options = comps.attention.options if comps.attention.name != "auto" else {}

    def make_attention() -> Any:
        return attention_record.build(spec, **attention_options)

    head_record = reg.get("head", comps.head.name) if comps.head is not None else None
    head_cls = head_record.load() if head_record is not None else None
    uses_pooler = bool(getattr(head_cls, "uses_pooler", True)) if head_cls is not None else True

    embeddings = reg.create("embedding", comps.embedding.name, spec, **comps.embedding.options)
    layer_cls = reg.get("layer", comps.layer.name).load()
    # per-layer options (a local window, a rotary base): a layer that takes layer_index gets its index
    indexed = _accepts(layer_cls, "layer_index")
    layers = [
        reg.create(
            "layer",
            comps.layer.name,
            spec,
            attention=make_attention(),
            cross_attention=make_attention() if spec.add_cross_attention else None,
            **({"layer_index": i} if indexed else {}),
            **comps.layer.options,
        )
        for i in range(spec.num_layer_modules)  # fewer than the layer calls when layers are shared (ALBERT)
    ]
    # pre-LayerNorm blocks: the layer class says which norm follows the last layer (key final_norm)
    make_final_norm = getattr(layer_cls, "final_norm", None)
    final_norm = make_final_norm(spec, **comps.layer.options) if callable(make_final_norm) else None
    pooler = None
    if comps.pooler is not None and uses_pooler:
        pooler = reg.create("pooler", comps.pooler.name, spec, **comps.pooler.options)
    bert = BertModel(spec, embeddings=embeddings, layers=layers, pooler=pooler, final_norm=final_norm)
    bert.attention_choice = _reason
    model: nn.Module = bert if head_cls is None else head_cls(bert, spec, **comps.head.options)  # type: ignore[union-attr]
    if init:
        init_weights(model, spec)
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    return model
