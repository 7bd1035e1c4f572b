"""Which attention op serves each trunk call: the built one, a per-call fallback, or the packed one.

The factory records the explained :class:`~bertzoo.selection.Choice` on the model; this router
turns it into ops per call and caches them per (need, device, dtype):

- a call that needs weights or ``head_mask`` the built attention lacks runs on the best able
  implementation when the choice was ``auto`` (an explicitly named one raises instead);
- a packed call runs on ``choice.packed``, the variable-length implementation chosen for models
  whose layer is registered with ``supports_packed=True`` (None: the model always runs padded).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from torch import Tensor

from bertzoo.errors import IncompatibleComponentError

if TYPE_CHECKING:
    from bertzoo.selection import Choice

logger = logging.getLogger(__name__)


class AttentionRouter:
    """The per-call attention decisions of one model.

    Args:
        spec: the model's spec (ops are built as ``record.build(spec)``).
        choice: the factory's choice, or None for a model assembled by hand (never packs or falls back).
    """

    def __init__(self, spec: Any, choice: Choice | None) -> None:
        self.spec = spec
        self.choice = choice
        self.fallback: str | None = None  # why the last call switched attention, if it did
        self._ops: dict[tuple[Any, ...], Any] = {}

    def describe(self, *, pack_inputs: bool = True) -> str:
        """``attention 'bertzoo:sdpa' (packed execution: ...)``, for error messages."""
        choice = self.choice
        if choice is None:
            return "no recorded attention choice"
        text = f"attention {choice.record.full_name!r}"
        if not pack_inputs:
            return text + " (pack_inputs is off)"
        return text + (f" (packed execution: {choice.packed_reason})" if choice.packed_reason else "")

    def packed_op(self, x: Tensor) -> tuple[Any] | None:
        """``(op,)`` for a packed call (op None = the layers' own attention), or None when the model
        cannot run packed on ``x``'s device and dtype.

        ``choice.packed`` is None unless the attention is variable-length *and* the layer's
        registration declares ``supports_packed`` (:func:`bertzoo.selection.packed_choice`), so
        ``--explain`` and the trunk agree.
        """
        choice = self.choice
        if choice is None or choice.packed is None:
            return None
        key = ("packed", x.device.type, x.dtype)
        if key not in self._ops:
            from bertzoo.selection import request_for, unmet

            record = choice.packed
            request = request_for(self.spec, device=x.device, dtype=x.dtype, varlen=True)
            if unmet(record, request):
                self._ops[key] = None
            elif record is choice.record:
                self._ops[key] = (None,)  # the layers' own attention is variable-length
            else:
                self._ops[key] = (record.build(self.spec),)
        plan: tuple[Any] | None = self._ops[key]
        return plan

    def for_call(self, need_weights: bool, need_head_mask: bool, x: Tensor) -> Any:
        """None (use the built attention), or an attention able to serve this call.

        Raises:
            IncompatibleComponentError: the attention was named explicitly and lacks the capability.
        """
        choice = self.choice
        if choice is None or not (need_weights or need_head_mask):
            return None
        caps = choice.record.capabilities
        lacks = [
            what for what, needed, cap in (
                ("return attention weights (output_attentions=True)", need_weights, "returns_weights"),
                ("apply head_mask", need_head_mask, "head_mask"),
            ) if needed and not caps.get(cap, False)
        ]
        if not lacks:
            return None
        if not choice.auto:
            raise IncompatibleComponentError(
                f"attention {choice.record.full_name!r} was named explicitly and cannot {' or '.join(lacks)}; "
                "build with attention='auto' (falls back per call) or attention='eager'"
            )
        key = (need_weights, need_head_mask, x.device.type, x.dtype)
        op = self._ops.get(key)
        if op is None:
            from bertzoo.discovery import registry_or_default
            from bertzoo.selection import choose, request_for

            request = request_for(
                self.spec, device=x.device, dtype=x.dtype, returns_weights=need_weights, head_mask=need_head_mask
            )
            fallback = choose(registry_or_default(choice.registry), request)
            op = fallback.record.build(self.spec)
            self._ops[key] = op
            self.fallback = (
                f"{choice.record.full_name} cannot {' or '.join(lacks)}; this call used {fallback.record.full_name}"
            )
            logger.info("attention fallback: %s", self.fallback)
        return op
