"""The assembled model: the trunk, its outputs, masks, packing, KV cache and initialisation.

``bertzoo.model`` re-exports what users and plugins import; the pieces live in one module each:

- :mod:`bertzoo.model.trunk`: :class:`BertModel` (embeddings → layers → pooler) and :class:`BertEncoder`.
- :mod:`bertzoo.model.outputs`: :class:`ModelOutput` (HF-style access) and :class:`BertModelOutput`.
- :mod:`bertzoo.model.inputs`: the forward calls' input checks.
- :mod:`bertzoo.model.routing`: which attention op serves each call (per-call fallback, packed calls).
- :mod:`bertzoo.model.masks`: an :class:`~bertzoo.interfaces.AttentionMask` in each kernel's form.
- :mod:`bertzoo.model.packing`: packed batches (``cu_seqlens``), :class:`Packing`.
- :mod:`bertzoo.model.cache`: :class:`KVCache` and the adapters for transformers' caches.
- :mod:`bertzoo.model.init`: :func:`init_weights` (HF's ``_init_weights``).
"""

from __future__ import annotations

from bertzoo.model.cache import KVCache, LayerCache
from bertzoo.model.init import init_weights
from bertzoo.model.outputs import BertModelOutput, ModelOutput
from bertzoo.model.packing import Packing, packing_from_mask
from bertzoo.model.trunk import BertEncoder, BertModel

__all__ = [
    "BertEncoder", "BertModel", "BertModelOutput", "KVCache", "LayerCache", "ModelOutput", "Packing",
    "init_weights", "packing_from_mask",
]
