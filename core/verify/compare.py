"""The arithmetic of one comparison: outputs as rows, the largest difference and the cosines.

Each comparison reports the largest absolute difference, and the minimum and mean cosine
similarity over rows (one row per real token for per-token outputs, one per text otherwise),
and passes when both are within its :class:`~bertzoo.verify.tolerances.Tolerance`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from bertzoo.errors import InputError
from bertzoo.verify.tolerances import TOLERANCES, Tolerance

# Outputs that hold one value (or vector) per token: compared on real tokens only.
_TOKEN_OUTPUTS = frozenset({"last_hidden_state", "token_embeddings", "start_logits", "end_logits",
                            "prediction_logits"})
_TOKEN_LOGIT_HEADS = frozenset({"masked-lm", "causal-lm", "token-classification"})
_SKIPPED_FIELDS = frozenset({"loss", "hidden_states", "attentions", "cross_attentions", "past_key_values",
                             "cache", "token_embeddings"})



def tensor_fields(output: Any) -> dict[str, Tensor]:
    """The tensor fields of a model output that verify compares (losses, caches and per-layer tuples left out)."""
    items = output.items() if hasattr(output, "items") else []
    return {k: v for k, v in items if isinstance(v, Tensor) and k not in _SKIPPED_FIELDS}


def is_token_output(name: str, head: str | None) -> bool:
    """Whether output ``name`` holds one value (or vector) per token, so padding must be left out."""
    return name in _TOKEN_OUTPUTS or (name == "logits" and head in _TOKEN_LOGIT_HEADS)


@dataclass
class Comparison:
    """One output of one bertzoo attention implementation against its reference.

    Attributes:
        attention: the bertzoo attention (full name) or the label of a model given to :func:`verify`.
        output: the output field (``last_hidden_state``, ``pooler_output``, ``logits``, ...).
        reference: ``"transformers"`` or ``"sentence-transformers"``.
        rows: how many rows were compared (real tokens, or texts), over all batch layouts.
        max_abs_diff: the largest ``|ours - reference|``.
        cosine_min: the smallest cosine similarity of a row.
        cosine_mean: the mean cosine similarity over rows.
        scale: ``max |reference|`` (the tolerance scales with it above 1).
        tolerance: the thresholds applied.
    """

    attention: str
    output: str
    reference: str
    rows: int
    max_abs_diff: float
    cosine_min: float
    cosine_mean: float
    scale: float
    tolerance: Tolerance

    @property
    def allowed_abs(self) -> float:
        return self.tolerance.allowed_abs(self.scale)

    @property
    def passed(self) -> bool:
        # `not (x > bound)` would pass NaN; spell out the comparisons so NaN fails
        return (self.rows > 0 and self.max_abs_diff <= self.allowed_abs
                and self.cosine_min >= self.tolerance.min_cosine)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["allowed_abs"] = self.allowed_abs
        out["passed"] = self.passed
        return out



@dataclass
class _Stats:
    """Running statistics of one (attention, output) over batches."""

    rows: int = 0
    max_abs: float = 0.0
    cos_min: float = 1.0
    cos_sum: float = 0.0
    scale: float = 0.0

    def add(self, ours: Tensor, reference: Tensor) -> None:
        """``ours``/``reference``: (N, D) rows. NaN anywhere makes the comparison fail."""
        a, b = ours.detach().to("cpu", torch.float64), reference.detach().to("cpu", torch.float64)
        if a.shape != b.shape:
            raise InputError(f"output shapes differ: bertzoo {tuple(a.shape)} vs reference {tuple(b.shape)}")
        if a.numel() == 0:
            return
        diff = float((a - b).abs().max()) if not (a.isnan().any() or b.isnan().any()) else float("nan")
        cos = torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-30)
        # two all-zero rows are identical (cosine_similarity would say 0)
        both_zero = (a.abs().amax(-1) == 0) & (b.abs().amax(-1) == 0)
        cos = torch.where(both_zero, torch.ones_like(cos), cos)
        self.rows += a.shape[0]
        self.max_abs = diff if diff != diff else max(self.max_abs, diff)  # keep NaN once seen
        self.cos_min = float(cos.min()) if cos.isnan().any() else min(self.cos_min, float(cos.min()))
        self.cos_sum += float(cos.sum())
        self.scale = max(self.scale, float(b.abs().max()))

    def comparison(self, attention: str, output: str, reference: str, tolerance: Tolerance) -> Comparison:
        mean = self.cos_sum / self.rows if self.rows else float("nan")
        return Comparison(attention, output, reference, self.rows, self.max_abs, self.cos_min, mean,
                          self.scale, tolerance)


def rows_of(output: Tensor, token_mask: Tensor | None) -> Tensor:
    """An output as (rows, features) for comparison.

    Args:
        output: ``(B, S, ...)`` per-token output when ``token_mask`` is given, else ``(B, ...)``.
        token_mask: ``(B, S)``, nonzero on real tokens; None for per-text outputs.

    Returns:
        ``(real tokens, features)`` for per-token vectors (``(B, S, D)``); ``(B, S)`` with padding
        zeroed for per-token scalars (``start_logits``: one row per text); ``(B, features)`` otherwise.
    """
    if token_mask is None:
        return output.reshape(output.shape[0], -1)
    real = token_mask.to(device=output.device).bool()
    if output.dim() == 2:
        return output.masked_fill(~real, 0)
    return output[real].reshape(int(real.sum()), -1)


def compare(
    attention: str,
    output: str,
    ours: Sequence[Tensor],
    reference: Sequence[Tensor],
    *,
    token_masks: Sequence[Tensor | None] | None = None,
    reference_name: str = "transformers",
    tolerance: Tolerance = TOLERANCES["float32"],
) -> Comparison:
    """Compare one output over several batches.

    Args:
        attention: label of the bertzoo side (an attention name).
        output: the output's name.
        ours: bertzoo's output per batch, e.g. ``(B, S, H)`` or ``(B, H)``.
        reference: the reference's output per batch, same shapes.
        token_masks: per batch, the ``(B, S)`` mask of real tokens for per-token outputs (None
            entries, or None, for per-text outputs).
        reference_name: label of the reference.
        tolerance: thresholds.

    Raises:
        InputError: the batches or shapes do not line up.
    """
    if len(ours) != len(reference):
        raise InputError(f"{output}: {len(ours)} bertzoo batches vs {len(reference)} reference batches")
    masks = list(token_masks) if token_masks is not None else [None] * len(ours)
    stats = _Stats()
    for a, b, m in zip(ours, reference, masks, strict=True):
        stats.add(rows_of(a, m), rows_of(b, m))
    return stats.comparison(attention, output, reference_name, tolerance)



__all__ = ["Comparison", "compare", "is_token_output", "rows_of", "tensor_fields"]
