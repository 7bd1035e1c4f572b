"""``sentence-embedding``: one vector per text, as sentence-transformers computes it.

The trunk's last hidden state is pooled over the real tokens (``mean``, ``cls`` = first real
token, ``max``, or ``mean_sqrt_len_tokens``) and optionally L2-normalised: sentence-transformers'
``Pooling`` and ``Normalize`` modules, with the same arithmetic (fp32 accumulation for half
precision, a 1e-9 floor on the token count, ``-inf`` fill for max). The options can be read
from a sentence-transformers folder: ``1_Pooling/config.json`` and the presence of
``Normalize`` in ``modules.json``.

The trunk keeps its pooler (``pooler.dense``) although the recipe does not use it: the weights
are in every sentence-transformers checkpoint, so loading and saving stay exact.

Shape legend: ``B`` batch, ``S`` sequence length, ``H`` hidden size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertzoo.checkpoint.sentence_transformers import write_sentence_transformers_files
from bertzoo.errors import CheckpointError
from bertzoo.heads import pooling
from bertzoo.heads.base import BertHead, check_states, finish
from bertzoo.heads.options import SentenceEmbeddingOptions
from bertzoo.heads.outputs import SentenceEmbeddingOutput
from bertzoo.interfaces import TaskStates

_SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")


def pool(token_embeddings: Tensor, attention_mask: Tensor | None, mode: str) -> Tensor:
    """Deprecated location and argument order, kept for one release; use
    ``bertzoo.heads.pooling.pool(hidden, mode, attention_mask=...)``."""
    return pooling.pool(token_embeddings, mode, attention_mask=attention_mask)


class BertForSentenceEmbedding(BertHead):
    """Pooled (and optionally normalised) sentence vectors (sentence-transformers' recipe)."""

    uses_pooler: ClassVar[bool] = True
    options_model = SentenceEmbeddingOptions

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)

    @property
    def pooling(self) -> str:
        return str(self.options.pooling)  # type: ignore[union-attr]

    @property
    def normalize(self) -> bool:
        return bool(self.options.normalize)  # type: ignore[union-attr]

    # -- task "embed" (bertzoo.interfaces.EmbedTask) -----------------------------------------------
    @property
    def embedding_dimension(self) -> int:
        return int(self.spec.hidden_size)

    @property
    def embedding_normalize(self) -> bool:
        return self.normalize

    def embed_states(self, states: TaskStates) -> Tensor:
        """``(B, H)`` float32 pooled vectors, not normalised (the pipeline normalises after merging
        a long text's windows), from packed or padded states.

        Raises:
            InputError: states that do not fit the model.
        """
        hidden = check_states(states, "sentence-embedding", self.spec.hidden_size)
        return pooling.pool(hidden, self.pooling, attention_mask=states.attention_mask,
                            cu_seqlens=states.cu_seqlens, dtype=torch.float32)

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, return_dict: bool | None = None, **kwargs: Any
    ) -> SentenceEmbeddingOutput | tuple[Tensor, ...]:
        """Args: ids (B, S) and the (B, S) attention mask (pooling only counts real tokens).
        Returns ``sentence_embedding`` (B, H) and ``token_embeddings`` (B, S, H)."""
        out = self.run_bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs,
        )
        tokens = out.last_hidden_state
        embedding = pooling.pool(tokens, self.pooling, attention_mask=attention_mask)
        if self.normalize:
            embedding = F.normalize(embedding, p=2, dim=-1)
        return finish(
            SentenceEmbeddingOutput(
                sentence_embedding=embedding, token_embeddings=tokens,
                hidden_states=out.hidden_states, attentions=out.attentions,
            ),
            return_dict,
        )

    # -- sentence-transformers folders --------------------------------------------------------------
    @classmethod
    def options_from_sentence_transformers(cls, info: Any) -> dict[str, Any]:
        """Pooling and normalisation from a folder's ``modules.json`` (a
        :class:`bertzoo.checkpoint.SentenceTransformerInfo`).

        Raises:
            CheckpointError: a module or pooling mode whose output this head would not reproduce.
        """
        extra = [m for m in info.modules if m not in _SUPPORTED_MODULES]
        if extra:
            raise CheckpointError(
                f"{str(info.folder)!r} has sentence-transformers module(s) {', '.join(extra)} after the "
                f"transformer; the sentence-embedding head reproduces only {', '.join(_SUPPORTED_MODULES)}, "
                "so its embeddings would differ: use sentence-transformers for this model"
            )
        supported = SentenceEmbeddingOptions.model_fields["pooling"].annotation.__args__  # type: ignore[union-attr]
        if info.pooling_mode not in supported:
            raise CheckpointError(
                f"{str(info.folder)!r} pools with {info.pooling_mode!r} ('+' joins concatenated modes); the "
                f"sentence-embedding head supports one of {', '.join(supported)}"
            )
        return {"pooling": info.pooling_mode, "normalize": bool(info.normalize)}

    def save_extra_files(self, folder: Path, context: Any = None) -> None:
        """Write the sentence-transformers files (called by ``save_pretrained`` with a
        :class:`bertzoo.checkpoint.save_sources.SaveContext`): ``modules.json``, ``1_Pooling/config.json``,
        ``sentence_bert_config.json`` and ``config_sentence_transformers.json``, so sentence-transformers,
        and bertzoo, load the folder with the same pooling, normalisation, max length and prompts."""
        settings = dict(vars(context.embedding)) if context is not None else {}
        write_sentence_transformers_files(folder, pooling_mode=self.pooling, normalize=self.normalize,
                                          dimension=self.spec.hidden_size, **settings)
