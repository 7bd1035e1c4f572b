"""KV cache for incremental decoding (``is_decoder=True`` models).

:class:`KVCache` holds, per layer, the self-attention keys/values seen so far (grown by
concatenation along the sequence) and the cross-attention keys/values, computed once from the
encoder states on the first step and reused afterwards. Tensors are ``(B, h, S, d)``.

``BertModel(past_key_values=...)`` (alias ``cache=``) accepts:

- a :class:`KVCache` (updated in place and returned);
- a transformers ``DynamicCache`` or ``EncoderDecoderCache`` (duck-typed, transformers is never
  imported here; updated in place through its own ``update``/``is_updated`` API and returned, so a
  transformers cache keeps working with transformers afterwards);
- a legacy tuple with one entry per layer, ``(k, v)`` or ``(k, v, cross_k, cross_v)`` (converted
  to a new :class:`KVCache`, which is returned; ``KVCache.to_legacy()`` gives tuples back).

Layers never see these types: the trunk hands each layer a :class:`LayerCache` view with three
methods (``update``, ``cross``, ``set_cross``), so a layer implementation works with every cache.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from bertzoo.errors import InputError

LegacyCache = Sequence[Sequence[Tensor]]


class LayerCache(Protocol):
    """One layer's view of a cache, as a :class:`~bertzoo.interfaces.Layer` receives it."""

    def update(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        """Append this step's self-attention ``(B, h, S, d)`` key/value; return all of them ``(B, h, S_past + S, d)``."""
        ...

    def cross(self) -> tuple[Tensor, Tensor] | None:
        """Cached cross-attention key/value ``(B, h, S_enc, d)``, or None before the first step."""
        ...

    def set_cross(self, key: Tensor, value: Tensor) -> None:
        """Store the cross-attention key/value computed from the encoder states."""
        ...


class KVCache:
    """bertzoo's cache: per layer self-attention K/V and cross-attention K/V.

    Args:
        num_layers: layers of the model it serves.
    """

    def __init__(self, num_layers: int) -> None:
        self.self_kv: list[tuple[Tensor, Tensor] | None] = [None] * num_layers
        self.cross_kv: list[tuple[Tensor, Tensor] | None] = [None] * num_layers

    def __len__(self) -> int:
        return len(self.self_kv)

    def __repr__(self) -> str:
        return f"KVCache(layers={len(self)}, seq_length={self.get_seq_length()})"

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Tokens cached for ``layer_idx`` (same for every layer after a full forward)."""
        entry = self.self_kv[layer_idx] if layer_idx < len(self.self_kv) else None
        return 0 if entry is None else entry[0].shape[-2]

    def update(self, key: Tensor, value: Tensor, layer_idx: int) -> tuple[Tensor, Tensor]:
        """Append ``(B, h, S, d)`` key/value to ``layer_idx`` and return the full ones (transformers' signature)."""
        entry = self.self_kv[layer_idx]
        if entry is not None:
            key = torch.cat([entry[0], key], dim=-2)
            value = torch.cat([entry[1], value], dim=-2)
        self.self_kv[layer_idx] = (key, value)
        return key, value

    def layer(self, layer_idx: int) -> LayerCache:
        return _KVCacheLayer(self, layer_idx)

    # -- legacy tuples ---------------------------------------------------------------------
    def to_legacy(self) -> tuple[tuple[Tensor, ...], ...]:
        """One tuple per layer: ``(k, v)``, or ``(k, v, cross_k, cross_v)`` once cross K/V exist."""
        out = []
        for i, entry in enumerate(self.self_kv):
            if entry is None:
                raise InputError(f"KVCache layer {i} is empty; run a forward with use_cache=True before to_legacy()")
            cross = self.cross_kv[i]
            out.append(entry if cross is None else (*entry, *cross))
        return tuple(out)

    @classmethod
    def from_legacy(cls, legacy: LegacyCache, num_layers: int) -> KVCache:
        """Build from one ``(k, v)`` or ``(k, v, cross_k, cross_v)`` tuple per layer.

        Raises:
            InputError: wrong number of layers or entries per layer.
        """
        if len(legacy) != num_layers:
            raise InputError(
                f"past_key_values has {len(legacy)} layer entries but the model has {num_layers} layers; "
                "pass the cache returned by this model"
            )
        cache = cls(num_layers)
        for i, entry in enumerate(legacy):
            if len(entry) not in (2, 4) or not all(isinstance(t, Tensor) for t in entry):
                raise InputError(
                    f"past_key_values[{i}] must be a tuple (key, value) or (key, value, cross_key, cross_value) "
                    f"of (B, heads, S, head_dim) tensors, got {len(entry)} items"
                )
            cache.self_kv[i] = (entry[0], entry[1])
            if len(entry) == 4:
                cache.cross_kv[i] = (entry[2], entry[3])
        return cache

    def __getitem__(self, layer_idx: int) -> tuple[Tensor, ...]:
        return self.to_legacy()[layer_idx]

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        return iter(self.to_legacy())

    # -- generation helpers ------------------------------------------------------------------
    def reorder_cache(self, beam_idx: Tensor) -> None:
        """Select batch rows (beam search): every cached tensor becomes ``t[beam_idx]``."""
        for store in (self.self_kv, self.cross_kv):
            for i, entry in enumerate(store):
                if entry is not None:
                    idx = beam_idx.to(entry[0].device)
                    store[i] = (entry[0].index_select(0, idx), entry[1].index_select(0, idx))

    def crop(self, max_length: int) -> None:
        """Keep only the first ``max_length`` cached self-attention tokens."""
        for i, entry in enumerate(self.self_kv):
            if entry is not None:
                self.self_kv[i] = (entry[0][..., :max_length, :], entry[1][..., :max_length, :])

    def key_shape(self) -> tuple[int, ...] | None:
        for entry in self.self_kv:
            if entry is not None:
                return tuple(entry[0].shape)
        return None


class _KVCacheLayer:
    __slots__ = ("cache", "idx")

    def __init__(self, cache: KVCache, idx: int) -> None:
        self.cache, self.idx = cache, idx

    def update(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        return self.cache.update(key, value, self.idx)

    def cross(self) -> tuple[Tensor, Tensor] | None:
        return self.cache.cross_kv[self.idx]

    def set_cross(self, key: Tensor, value: Tensor) -> None:
        self.cache.cross_kv[self.idx] = (key, value)


class _HFCacheLayer:
    """A view on a transformers ``DynamicCache`` (self only) or ``EncoderDecoderCache`` (self + cross)."""

    __slots__ = ("cross_cache", "idx", "is_updated", "self_cache")

    def __init__(self, cache: Any, idx: int) -> None:
        self.idx = idx
        if _is_hf_encoder_decoder(cache):
            self.self_cache, self.cross_cache, self.is_updated = (
                cache.self_attention_cache, cache.cross_attention_cache, cache.is_updated
            )
        else:  # a DynamicCache has nowhere to keep cross K/V: they are recomputed each step
            self.self_cache, self.cross_cache, self.is_updated = cache, None, None

    def update(self, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
        out: tuple[Tensor, Tensor] = self.self_cache.update(key, value, self.idx)
        return out

    def cross(self) -> tuple[Tensor, Tensor] | None:
        if self.cross_cache is None or not self.is_updated.get(self.idx, False):
            return None
        layer = self.cross_cache.layers[self.idx]
        return layer.keys, layer.values

    def set_cross(self, key: Tensor, value: Tensor) -> None:
        if self.cross_cache is None:
            return
        self.cross_cache.update(key, value, self.idx)
        self.is_updated[self.idx] = True


def _is_hf_encoder_decoder(obj: Any) -> bool:
    return hasattr(obj, "self_attention_cache") and hasattr(obj, "cross_attention_cache") and hasattr(obj, "is_updated")


def _is_hf_cache(obj: Any) -> bool:
    return _is_hf_encoder_decoder(obj) or (hasattr(obj, "update") and hasattr(obj, "get_seq_length") and hasattr(obj, "layers"))


def _hf_key_shape(cache: Any) -> tuple[int, ...] | None:
    self_cache = cache.self_attention_cache if _is_hf_encoder_decoder(cache) else cache
    for layer in getattr(self_cache, "layers", ()):
        keys = getattr(layer, "keys", None)
        if isinstance(keys, Tensor) and keys.dim() == 4 and keys.shape[-2] > 0:
            return tuple(keys.shape)
    return None


class CacheHandle:
    """What the trunk needs from whatever cache it was given: past length, per-layer views, the return value."""

    def __init__(self, cache: Any, num_layers: int) -> None:
        if isinstance(cache, KVCache):
            if len(cache) != num_layers:
                raise InputError(
                    f"past_key_values is a KVCache for {len(cache)} layers but the model has {num_layers}; "
                    "pass the cache returned by this model"
                )
            self.cache: Any = cache
            self.layers: list[LayerCache] = [cache.layer(i) for i in range(num_layers)]
            self.key_shape = cache.key_shape()
        elif _is_hf_cache(cache):
            self.cache = cache
            self.layers = [_HFCacheLayer(cache, i) for i in range(num_layers)]
            self.key_shape = _hf_key_shape(cache)
        elif isinstance(cache, (tuple, list)):
            self.cache = KVCache.from_legacy(cache, num_layers)
            self.layers = [self.cache.layer(i) for i in range(num_layers)]
            self.key_shape = self.cache.key_shape()
        else:
            raise InputError(
                f"past_key_values must be a bertzoo KVCache, a transformers DynamicCache/EncoderDecoderCache or "
                f"a tuple of per-layer (key, value[, cross_key, cross_value]) tuples, not {type(cache).__name__}"
            )
        self.seq_length = int(self.cache.get_seq_length())

    def check(self, batch_size: int, num_heads: int, head_dim: int) -> None:
        """Raise if the cached tensors were made for another batch size or head layout."""
        shape = self.key_shape
        if shape is None or self.seq_length == 0:
            return
        if len(shape) != 4 or shape[0] != batch_size or shape[1] != num_heads or shape[3] != head_dim:
            raise InputError(
                f"past_key_values holds keys of shape {tuple(shape)} but this call needs (B={batch_size}, "
                f"heads={num_heads}, S_past, head_dim={head_dim}); pass the cache returned by this model for this "
                "batch, or none to start over"
            )
