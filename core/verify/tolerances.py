"""How close bertzoo must come to the reference: :class:`Tolerance` and one per dtype in :data:`TOLERANCES`.

In float32 a comparison passes when ``max |diff| <= 1e-4 * max(1, max |reference|)`` (absolute
for outputs of order one, relative for larger ones: MLM logits reach tens, where float32
rounding alone is ~1e-5) and ``cosine >= 0.99999`` for every row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """Pass thresholds of one comparison.

    Attributes:
        max_abs: largest allowed ``|ours - reference|``, multiplied by ``max(1, max |reference|)``.
        min_cosine: smallest allowed cosine similarity of any row.
    """

    max_abs: float
    min_cosine: float

    def allowed_abs(self, scale: float) -> float:
        return self.max_abs * max(1.0, scale)

    def __str__(self) -> str:
        return f"max |diff| <= {self.max_abs:g} x max(1, max |reference|); cosine >= {self.min_cosine:g} on every row"


# bertzoo in this dtype vs the float32 reference. Half precision keeps ~3 significant digits
# (bf16: 8 mantissa bits), so its bounds say "same model", not "same bits". Measured on
# all-MiniLM-L6-v2 (CPU, every built-in attention): float16 max |diff| 1e-3 relative, cosine
# min 0.999995; bfloat16 1e-2 relative, cosine min 0.9997. The bounds leave room for deeper models.
TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(max_abs=1e-4, min_cosine=0.99999),
    "float16": Tolerance(max_abs=1e-2, min_cosine=0.9995),
    "bfloat16": Tolerance(max_abs=5e-2, min_cosine=0.995),
}

__all__ = ["TOLERANCES", "Tolerance"]
