"""ELECTRA's embeddings: BERT's at width E (``embedding_size``), then ``embeddings_project: Linear(E, H)``.

transformers' ``models/electra/modeling_electra.py``: ``ElectraEmbeddings`` is BERT's embedding
block with every table and the LayerNorm E-wide (positions are BERT's ``arange``); the model
applies ``embeddings_project`` after the embedding dropout, and builds it **only when E ≠ H**
(electra-base/large discriminators have E = H and no such key). Here the projection lives in the
embedding module, so the trunk sees H-wide states (``hidden_states[0]`` is post-projection, as
in transformers); the checkpoint's top-level ``electra.embeddings_project.*`` is mapped to
``embeddings.embeddings_project.*`` by the family's ``key_renames``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from bertzoo.plugins.eager import BertEmbeddings


def embedding_width(spec: Any) -> int:
    """E: ``spec.embedding_size``, or the hidden size when it is None."""
    width = getattr(spec, "embedding_size", None)
    return int(width) if width is not None else int(spec.hidden_size)


class _AtWidth:
    """``spec`` as BertEmbeddings reads it, with ``hidden_size`` replaced by the embedding width."""

    def __init__(self, spec: Any, width: int) -> None:
        self._spec = spec
        self.hidden_size = width

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spec, name)


class ElectraEmbeddings(BertEmbeddings):
    """E-wide BERT embeddings, plus ``embeddings_project`` (E → H) when E ≠ H. Keys ``embeddings.*``."""

    def __init__(self, spec: Any) -> None:
        width = embedding_width(spec)
        super().__init__(_AtWidth(spec, width))
        if width != spec.hidden_size:
            self.embeddings_project = nn.Linear(width, spec.hidden_size)

    def forward(
        self,
        input_ids: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        past_key_values_length: int = 0,
    ) -> Tensor:
        """``(B, S)`` ids or ``(B, S, E)`` embeds → ``(B, S, H)``."""
        x = super().forward(
            input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds, past_key_values_length=past_key_values_length,
        )  # (B, S, E)
        project = getattr(self, "embeddings_project", None)
        return x if project is None else project(x)  # (B, S, H)
