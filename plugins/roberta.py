"""RoBERTa's embeddings (also XLM-RoBERTa's): BERT's, with padding-aware positions.

transformers' ``models/roberta/modeling_roberta.py`` (``RobertaEmbeddings``): same modules and
keys as BERT (``embeddings.{word,position,token_type}_embeddings``, ``embeddings.LayerNorm``),
but the position table has ``padding_idx = pad_token_id`` and positions are counted from the
ids: each real token gets ``pad + 1, pad + 2, ...`` (pad tokens skipped), every pad token gets
``pad``. So positions ignore left padding, and the longest input is ``max_position_embeddings -
pad - 1`` tokens (512 for 514). The encoder layers and the pooler are BERT's
(:mod:`bertzoo.plugins.eager`).

Packed calls give explicit per-sequence positions ``0 .. len - 1`` plus :attr:`position_offset`
(the trunk adds it), which is exactly what the ids rule gives a sequence without padding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from bertzoo.errors import InputError
from bertzoo.plugins.eager import BertEmbeddings


def positions_from_ids(input_ids: Tensor, padding_idx: int, past_key_values_length: int = 0) -> Tensor:
    """transformers' ``create_position_ids_from_input_ids``: ``(cumsum(m) + past) · m + pad`` with
    ``m = ids != pad``. ``(B, S)`` → ``(B, S)`` long; ids ``[0,5,6,2,1,1]`` (pad 1) → ``[2,3,4,5,1,1]``."""
    m = input_ids.ne(padding_idx).int()
    return ((torch.cumsum(m, dim=1).type_as(m) + past_key_values_length) * m).long() + padding_idx


class RobertaEmbeddings(BertEmbeddings):
    """BERT embeddings with RoBERTa's positions. Keys ``embeddings.*`` (as BERT's).

    ``spec.pad_token_id`` is the padding index of the word and position tables (RoBERTa: 1).
    """

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        if spec.pad_token_id is None:
            raise InputError("RoBERTa embeddings need pad_token_id (positions count from it); set it, e.g. 1")
        self.padding_idx = int(spec.pad_token_id)
        self.position_embeddings = nn.Embedding(spec.max_position_embeddings, spec.hidden_size,
                                                padding_idx=self.padding_idx)
        self.position_offset = self.padding_idx + 1  # the first real position (read by the packed trunk)

    def forward(
        self,
        input_ids: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        past_key_values_length: int = 0,
    ) -> Tensor:
        """``(B, S)`` ids or ``(B, S, H)`` embeds → ``(B, S, H)``.

        Positions: explicit ``position_ids`` as given; from ids as above; from ``inputs_embeds``
        ``arange(pad + 1, S + pad + 1)`` for every row (padding cannot be seen there, and
        transformers ignores the cache length on that path too).

        Raises:
            InputError: no input, or a position beyond the table (input too long).
        """
        if position_ids is None:
            if input_ids is not None:
                position_ids = positions_from_ids(input_ids, self.padding_idx, past_key_values_length)
            elif inputs_embeds is not None:
                S = inputs_embeds.shape[1]
                position_ids = torch.arange(self.position_offset, S + self.position_offset,
                                            device=inputs_embeds.device).unsqueeze(0)  # (1, S)
            self._check_length(position_ids, past_key_values_length)
        return super().forward(
            input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds, past_key_values_length=past_key_values_length,
        )

    def _check_length(self, position_ids: Tensor | None, past: int) -> None:
        # shape bound first (no host sync); only a long input pays for the exact check
        if position_ids is None:
            return
        table = self.position_embeddings.num_embeddings
        if past + position_ids.shape[-1] + self.padding_idx < table:
            return
        if position_ids.numel() and int(position_ids.max()) >= table:
            limit = table - self.position_offset
            raise InputError(
                f"input of {past + position_ids.shape[-1]} tokens is too long for this RoBERTa-style model: "
                f"positions start at {self.position_offset}, so at most {limit} tokens fit "
                f"max_position_embeddings={table}; truncate to {limit} tokens"
            )
