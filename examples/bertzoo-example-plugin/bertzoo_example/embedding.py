"""``max-mean``: a sentence vector made of the max and the mean of the real tokens, concatenated.

A head that serves bertzoo's main job: it is registered with ``task="embed"`` and implements
the embed contract (:class:`bertzoo.interfaces.EmbedTask`), so ``bertzoo.embed(texts,
head="example:max-mean")`` and ``bertzoo embed --head example:max-mean`` use it on any BERT
checkpoint, with bertzoo's own batching, packing and truncation. The pooling itself is bertzoo's
(:func:`bertzoo.heads.pooling.pool`), for padded ``(B, S, H)`` and packed ``(T, H)`` states alike.

The vector is ``[max over real tokens, mean over real tokens]`` of the last hidden state:
``(B, 2H)``, not normalised. The head has no parameters of its own.

Shape legend: ``B`` batch, ``S`` sequence length, ``T`` real tokens in the batch, ``H`` hidden size.
"""

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from bertzoo.errors import InputError
from bertzoo.heads.conveniences import ModelConveniences  # transformers' model conveniences (optional)
from bertzoo.heads.outputs import SentenceEmbeddingOutput
from bertzoo.heads.pooling import pool
from bertzoo.interfaces import TaskStates


def max_mean(hidden: Tensor, *, attention_mask: Tensor | None = None, cu_seqlens: Tensor | None = None,
             dtype: torch.dtype | None = None) -> Tensor:
    """``[max, mean]`` over each sequence's real tokens → ``(B, 2H)``."""
    where = {"attention_mask": attention_mask, "cu_seqlens": cu_seqlens, "dtype": dtype}
    return torch.cat([pool(hidden, "max", **where), pool(hidden, "mean", **where)], dim=-1)


class MaxMeanEmbeddingHead(ModelConveniences, nn.Module):
    """Sentence vectors ``[max, mean]`` of the real tokens' last hidden states, ``(B, 2H)``."""

    uses_pooler: ClassVar[bool] = False  # BERT's pooler is not used
    classifier_keys: ClassVar[tuple[str, ...]] = ()  # nothing of its own to re-initialise
    embedding_normalize: ClassVar[bool] = False  # the embed task's default: vectors as they are

    def __init__(self, bert: nn.Module, spec: Any) -> None:
        super().__init__()
        self.bert = bert
        self.spec = spec

    @property
    def embedding_dimension(self) -> int:
        return 2 * int(self.spec.hidden_size)

    def embed_states(self, states: TaskStates) -> Tensor:
        """``(B, 2H)`` float32 from the states bertzoo's pipeline hands over (packed or padded).

        Raises:
            InputError: states whose hidden size is not the model's.
        """
        hidden = states.hidden
        if hidden.dim() not in (2, 3) or hidden.shape[-1] != self.spec.hidden_size:
            raise InputError(f"max-mean: hidden states have shape {tuple(hidden.shape)}; expected (..., "
                             f"{self.spec.hidden_size}), the trunk's last hidden state")
        return max_mean(hidden, attention_mask=states.attention_mask, cu_seqlens=states.cu_seqlens,
                        dtype=torch.float32)

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        return_dict: bool | None = None,
        **trunk_kwargs: Any,
    ) -> SentenceEmbeddingOutput | tuple[Tensor, ...]:
        """Args: ids (B, S), mask (B, S). Returns ``sentence_embedding`` (B, 2H) and
        ``token_embeddings`` (B, S, H)."""
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                        return_dict=True, **trunk_kwargs)
        tokens = out.last_hidden_state  # (B, S, H)
        mask = attention_mask[:, -tokens.shape[1]:] if attention_mask is not None else None
        output = SentenceEmbeddingOutput(max_mean(tokens, attention_mask=mask), tokens, out.hidden_states,
                                         out.attentions)
        return output if return_dict is None or return_dict else output.to_tuple()

    def save_pretrained(self, path: Any, **kwargs: Any) -> Any:
        from bertzoo.checkpoint import save_pretrained

        return save_pretrained(self, path, **kwargs)
