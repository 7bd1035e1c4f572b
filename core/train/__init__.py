"""``bertzoo.train``: fine-tune any head on CSV, JSON-lines or parquet data, packed, on one process or many.

``bertzoo.train(model, head=..., train=FILE, output=DIR, ...)`` and ``bertzoo train --model M --head H
--train FILE --output DIR`` do the same (docs/training.md). The package itself is callable, so
``bertzoo.train(...)`` runs :func:`bertzoo.train.api.train` (also exported as ``fit``).

Modules: :mod:`~bertzoo.train.config` (options), :mod:`~bertzoo.train.data` (readers, labels),
:mod:`~bertzoo.train.batches` (plans, packed tensors), :mod:`~bertzoo.train.tasks` (objectives),
:mod:`~bertzoo.train.loop` (the loop), :mod:`~bertzoo.train.checkpoints`,
:mod:`~bertzoo.train.distributed`, :mod:`~bertzoo.train.metrics`, :mod:`~bertzoo.train.evaluate`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from bertzoo.train.api import train as fit
from bertzoo.train.config import TrainConfig


class _CallableModule(types.ModuleType):
    """``bertzoo.train(...)`` calls :func:`bertzoo.train.api.train`: importing a submodule sets the
    package attribute ``bertzoo.train`` to this module, which must stay callable."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return fit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
# ``bertzoo.train`` (the lazy export of bertzoo/__init__) resolves to this callable package, so the
# parent's attribute never flips between package and function (``import bertzoo.train.loop`` keeps working)
train = sys.modules[__name__]

__all__ = ["TrainConfig", "fit", "train"]
