"""``attention="auto"``: choose an attention implementation by declared capabilities.

Every registered attention declares its capabilities (devices, dtypes, causal, cross-attention,
KV cache, weights, head mask, packed input) and a ``priority`` (higher = preferred when able).
The choice is explained: :class:`Choice` records why each other candidate was passed over, and
``bertzoo build ... --explain`` prints it. An explicitly named implementation that cannot
serve the request raises instead of silently degrading (transformers' sdpa returns ``()``
attentions; we do not).

Packed execution: for an encoder whose layer is registered with ``supports_packed=True``, the
choice also names the implementation that runs packed calls (real tokens only, ``(T, h, d)`` with
``cu_seqlens``; see :class:`bertzoo.model.BertModel`): the chosen one when it is variable-length,
else, under ``auto``, the best variable-length one (``Request(varlen=True)``). Measured on CPU
(``benchmarks/encoder.py``, issue-6 workload, 47% padding) packed calls run 1.7x (MiniLM) and
1.85x (BERT-base) the padded sdpa path of the same model, and an unpadded batch packs with a free
reshape and one batched attention call, so packing is preferred whenever it is possible. (Under
CPU oversubscription the per-sequence attention loop stalls on OpenMP barriers and the lead
shrinks; see docs/benchmarks.md.)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from bertzoo.dtypes import dtype_name
from bertzoo.errors import ComponentNotFoundError, IncompatibleComponentError
from bertzoo.registry import ComponentRecord, Registry


@dataclass(frozen=True)
class Request:
    """What a model (or one forward call) needs from its attention."""

    device: str = "cpu"
    dtype: str = "float32"
    causal: bool = False
    cross_attention: bool = False
    kv_cache: bool = False
    returns_weights: bool = False
    head_mask: bool = False
    dropout: bool = False
    varlen: bool = False  # packed (T, h, d) input with cu_seqlens (packed execution)

    def needs(self) -> dict[str, bool]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, bool) and v}


@dataclass
class Choice:
    """The chosen record and why: one line per candidate."""

    record: ComponentRecord
    auto: bool
    request: Request
    reasons: dict[str, str] = field(default_factory=dict)
    # the registry the choice was made from, so per-call fallbacks look in the same place
    registry: Registry | None = field(default=None, repr=False, compare=False)
    # the variable-length implementation that runs packed calls, or None (no packed execution)
    packed: ComponentRecord | None = field(default=None, compare=False)
    packed_reason: str = ""

    def explain(self) -> str:
        head = f"attention: {self.record.full_name}" + (" (auto)" if self.auto else " (named in the spec)")
        lines = [head, f"  request: device={self.request.device} dtype={self.request.dtype} "
                       f"needs={','.join(sorted(self.request.needs())) or 'nothing special'}"]
        lines += [f"  {name}: {why}" for name, why in self.reasons.items()]
        if self.packed_reason:
            lines.append(f"  packed execution: {self.packed_reason}")
        return "\n".join(lines)


def _device_name(device: Any) -> str:
    if device is None:
        return "cpu"
    return str(device).split(":", 1)[0]


def request_for(spec: Any, *, device: Any = None, dtype: Any = None, **needs: bool) -> Request:
    return Request(
        device=_device_name(device),
        dtype=dtype_name(dtype),
        causal=bool(spec.is_decoder),
        cross_attention=bool(spec.add_cross_attention),
        kv_cache=bool(spec.is_decoder and spec.use_cache),
        **needs,
    )


def unmet(record: ComponentRecord, request: Request) -> list[str]:
    """Capabilities ``request`` needs that ``record`` does not declare."""
    caps = record.capabilities
    missing = []
    devices = caps.get("devices", ("cpu", "cuda"))
    dtypes = caps.get("dtypes", ("float32", "bfloat16", "float16"))
    if request.device not in devices:
        missing.append(f"device {request.device} (supports {', '.join(devices)})")
    if request.dtype not in dtypes:
        missing.append(f"dtype {request.dtype} (supports {', '.join(dtypes)})")
    # A missing declaration counts as "no" for optional features, so nothing is claimed silently.
    missing += [need.replace("_", "-") for need in request.needs() if not caps.get(need, False)]
    return missing


def choose(registry: Registry, request: Request, name: str = "auto") -> Choice:
    """Pick the attention for ``request``: the named one (checked) or the best able one.

    Raises:
        IncompatibleComponentError: the named implementation lacks a needed capability, or no
            registered implementation can serve the request.
    """
    if name != "auto":
        record = registry.get("attention", name)
        missing = unmet(record, request)
        if missing:
            others = [r.full_name for r in registry.records("attention") if not unmet(r, request)]
            raise IncompatibleComponentError(
                f"attention {record.full_name!r} cannot serve this request: it lacks {', '.join(missing)}; "
                f"use attention='auto' or one of: {', '.join(others) or 'none registered'}"
            )
        return Choice(
            record, auto=False, request=request, reasons={record.full_name: "named explicitly"}, registry=registry
        )
    candidates = registry.records("attention")
    reasons: dict[str, str] = {}
    able: list[ComponentRecord] = []
    for rec in candidates:
        missing = unmet(rec, request)
        if rec.metadata.get("auto", True) is False:
            # e.g. a local-window attention: exact only when named on purpose
            reasons[rec.full_name] = "passed over: opts out of automatic choice (auto=False); name it to use it"
        elif missing:
            reasons[rec.full_name] = "passed over: lacks " + ", ".join(missing)
        else:
            able.append(rec)
    if not able:
        raise IncompatibleComponentError(
            "no registered attention can serve this request ("
            + "; ".join(f"{k}: {v}" for k, v in reasons.items())
            + "); install or enable a plugin that provides one (see `bertzoo plugins`)"
        )
    able.sort(key=lambda r: -float(r.metadata.get("priority", 0)))
    best = able[0]
    reasons = {best.full_name: f"chosen: highest priority ({best.metadata.get('priority', 0)}) able to serve it"} | {
        r.full_name: f"able, lower priority ({r.metadata.get('priority', 0)})" for r in able[1:]
    } | reasons
    return Choice(best, auto=True, request=request, reasons=reasons, registry=registry)


def resolve_attention(spec: Any, registry: Registry, *, device: Any = None, dtype: Any = None) -> tuple[ComponentRecord, Choice]:
    """The attention record a model is built with, and the explained choice (including the
    implementation for packed calls, see :func:`packed_choice`)."""
    request = request_for(spec, device=device, dtype=dtype)
    choice = choose(registry, request, spec.components.attention.name)
    choice.packed, choice.packed_reason = packed_choice(spec, registry, choice)
    return choice.record, choice


def packed_choice(spec: Any, registry: Registry, choice: Choice) -> tuple[ComponentRecord | None, str]:
    """Which implementation runs packed calls of a model built with ``choice``, and why.

    Encoders only (a decoder's cache and cross-attention need padded keys), built with a layer
    whose registration declares ``supports_packed=True`` (metadata: the layer runs ``(T, H)``
    hidden states with a ``cu_seqlens`` mask). Packed calls are those without attention weights,
    ``head_mask`` or a 4-D mask, whose padding leaves each row's real tokens contiguous; the
    others run padded on ``choice.record``.
    """
    if spec.is_decoder:
        return None, "off (decoder: causal cache and cross-attention run padded)"
    when = "calls without weights, head_mask or a 4-D mask run on real tokens only"
    if choice.record.capabilities.get("varlen", False):
        packed, reason = choice.record, f"{choice.record.full_name} ({when})"
    elif not choice.auto:
        return None, f"off ({choice.record.full_name} was named and is not variable-length; name 'flash' or use 'auto')"
    else:
        try:
            varlen = choose(registry, replace(choice.request, varlen=True))
        except IncompatibleComponentError:
            return None, "off (no registered variable-length attention can serve this model)"
        packed, reason = varlen.record, f"{varlen.record.full_name} ({when}; padded calls use {choice.record.full_name})"
    layer_off = _layer_cannot_pack(spec, registry)
    return (None, layer_off) if layer_off else (packed, reason)


def layer_supports_packed(record: ComponentRecord) -> bool:
    """Whether a layer's registration declares ``supports_packed=True``; undeclared counts as no."""
    return bool(record.metadata.get("supports_packed", False))


def _layer_cannot_pack(spec: Any, registry: Registry) -> str:
    """Why the spec's layer keeps the model padded, or "" when it runs packed."""
    name = spec.components.layer.name
    try:
        record = registry.get("layer", name)
    except ComponentNotFoundError:
        return f"off (layer {name!r} is not registered here, so it cannot declare supports_packed)"
    if layer_supports_packed(record):
        return ""
    return (
        f"off (layer {record.full_name} is not registered with supports_packed=True, so every call runs padded; "
        "its plugin declares it once the layer runs (T, H) input with a cu_seqlens mask)"
    )


def explain_attention(spec: Any, registry: Registry | None = None, *, device: Any = None, dtype: Any = None) -> str:
    """Why ``spec`` gets the attention it gets, one line per registered candidate."""
    from bertzoo.discovery import registry_or_default

    return resolve_attention(spec, registry_or_default(registry), device=device, dtype=dtype)[1].explain()
