"""Base class for attention ops that never form the probabilities (``bertzoo:sdpa``, ``bertzoo:flash``).

Such an op returns no weights and takes no ``head_mask``; the base refuses both with the fix, so a
subclass implements only :meth:`ProbabilityFreeAttention.attend` and declares ``capabilities``
and ``component`` (its full name, used in error messages).
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from bertzoo.errors import IncompatibleComponentError
from bertzoo.interfaces import AttentionCapabilities, AttentionMask


class ProbabilityFreeAttention(nn.Module):
    """An attention op without parameters, weights or head mask. Built by the factory as ``cls(spec)``."""

    capabilities: ClassVar[AttentionCapabilities]
    component: ClassVar[str]  # e.g. "bertzoo:sdpa"

    def __init__(self, spec: Any = None) -> None:
        super().__init__()

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        *,
        mask: AttentionMask,
        dropout_p: float = 0.0,
        scale: float | None = None,
        need_weights: bool = False,
        head_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """The :class:`~bertzoo.interfaces.Attention` contract; weights are always None.

        Raises:
            IncompatibleComponentError: ``need_weights`` or ``head_mask`` was asked for.
        """
        if need_weights or head_mask is not None:
            wanted = "attention weights (output_attentions=True)" if need_weights else "head_mask"
            raise IncompatibleComponentError(
                f"attention '{self.component}' cannot give {wanted}: it never forms the probabilities; "
                "use attention='eager' or attention='auto'"
            )
        return self.attend(query, key, value, mask=mask, dropout_p=dropout_p, scale=scale), None

    def attend(self, query: Tensor, key: Tensor, value: Tensor, *, mask: AttentionMask, dropout_p: float,
               scale: float | None) -> Tensor:
        """The context for ``query`` over ``key``/``value`` (layouts as the subclass declares)."""
        raise NotImplementedError
