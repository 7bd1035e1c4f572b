"""The trunk's output types: :class:`ModelOutput` (HF-style access) and :class:`BertModelOutput`.

Heads build their own output dataclasses on :class:`ModelOutput` (see :mod:`bertzoo.heads.outputs`).
Shape legend: B batch, S new tokens, S_past cached tokens, S_enc encoder length, H hidden, h heads,
L layers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from torch import Tensor


@dataclass(eq=False)
class ModelOutput:
    """A dataclass that also reads like HF's ``ModelOutput``.

    ``out.field``, ``out["field"]`` and ``out[0]`` all work; integer indexing, iteration and
    :meth:`to_tuple` see only the fields that are not None, in declaration order (HF's rule).
    """

    _aliases = {"cache": "past_key_values"}

    def items(self) -> list[tuple[str, Any]]:
        return [(f.name, v) for f in fields(self) if (v := getattr(self, f.name)) is not None]

    def keys(self) -> list[str]:
        return [k for k, _ in self.items()]

    def values(self) -> list[Any]:
        return [v for _, v in self.items()]

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(self.values())

    def to_dict(self) -> dict[str, Any]:
        return dict(self.items())

    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            name = self._aliases.get(key, key)
            value = getattr(self, name, None) if name in {f.name for f in fields(self)} else None
            if value is None:
                raise KeyError(f"{key!r} is not set in this {type(self).__name__}; set fields: {', '.join(self.keys())}")
            return value
        return self.to_tuple()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.items())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._aliases.get(key, key) in self.keys()

    @property
    def cache(self) -> Any:
        """transformers 5's name for ``past_key_values`` (None for outputs without a cache)."""
        return getattr(self, "past_key_values", None)


@dataclass(eq=False)
class BertModelOutput(ModelOutput):
    """What :class:`BertModel` returns (HF's ``BaseModelOutputWithPoolingAndCrossAttentions``).

    Attributes:
        last_hidden_state: ``(B, S, H)``.
        pooler_output: ``(B, H)``, or None without a pooler.
        past_key_values: the cache, when ``use_cache`` (decoders only). Alias: ``cache``.
        hidden_states: L + 1 tensors ``(B, S, H)``: the embeddings, then each layer's output.
        attentions: L tensors ``(B, h, S, S_past + S)``: probabilities after dropout and head mask.
        cross_attentions: tensors ``(B, h, S, S_enc)`` for layers that ran cross-attention
            (``()`` when attentions were asked for but none ran, as transformers 5 does).
    """

    last_hidden_state: Tensor
    pooler_output: Tensor | None = None
    past_key_values: Any = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None
    cross_attentions: tuple[Tensor, ...] | None = None
