"""``bertzoo verify``: prove that a checkpoint gives transformers' (and sentence-transformers') numbers.

:func:`verify` loads one checkpoint folder twice — in bertzoo, once per attention
implementation, and in transformers (eager attention, float32: the reference definition) — runs
both on the same token ids of a built-in set of varied texts (:data:`TEXTS`, :data:`PAIRS`), in
two batch layouts (one padding-heavy mixed batch, and length-sorted batches), and compares every
output on real tokens only, within :data:`TOLERANCES` for the dtype bertzoo ran in.

The package, by seam:

- :mod:`~bertzoo.verify.tolerances`: :class:`Tolerance`, :data:`TOLERANCES`;
- :mod:`~bertzoo.verify.texts`: :data:`TEXTS`, :data:`PAIRS` and the batch layouts;
- :mod:`~bertzoo.verify.compare`: :func:`compare`, :func:`rows_of`, :class:`Comparison`;
- :mod:`~bertzoo.verify.report`: :class:`VerifyReport`, :class:`TokenizerCheck`;
- :mod:`~bertzoo.verify.references`: loading transformers / sentence-transformers;
- :mod:`~bertzoo.verify.run`: :func:`verify` itself.
"""

from __future__ import annotations

from bertzoo.verify.compare import Comparison, compare, rows_of
from bertzoo.verify.references import MissingDependencyError
from bertzoo.verify.report import TokenizerCheck, VerifyReport
from bertzoo.verify.run import verify
from bertzoo.verify.texts import PAIRS, TEXTS
from bertzoo.verify.tolerances import TOLERANCES, Tolerance

__all__ = ["PAIRS", "TEXTS", "TOLERANCES", "Comparison", "MissingDependencyError", "TokenizerCheck", "Tolerance",
           "VerifyReport", "compare", "rows_of", "verify"]
