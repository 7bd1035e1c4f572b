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

import json
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertzoo.errors import CheckpointError
from bertzoo.heads.base import BertHead, finish
from bertzoo.heads.options import SentenceEmbeddingOptions
from bertzoo.heads.outputs import SentenceEmbeddingOutput

# sentence-transformers' legacy boolean keys, in the order it reads them
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")


def pool(token_embeddings: Tensor, attention_mask: Tensor | None, mode: str) -> Tensor:
    """(B, S, H) hidden states and a (B, S) mask (1 = real token) → (B, H)."""
    if attention_mask is None:
        attention_mask = torch.ones(token_embeddings.shape[:-1], dtype=torch.long, device=token_embeddings.device)
    if mode == "cls":
        # the first real token (sentence-transformers also handles left padding this way)
        first = attention_mask.to(torch.int).argmax(dim=1)  # (B,)
        return token_embeddings[torch.arange(token_embeddings.shape[0], device=first.device), first]
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)  # (B, S, 1)
    if mode == "max":
        return token_embeddings.masked_fill(mask == 0, float("-inf")).max(dim=1).values
    # mean variants accumulate in fp32 when the model runs in half precision
    acc = torch.float32 if token_embeddings.dtype in (torch.float16, torch.bfloat16) else token_embeddings.dtype
    total = (token_embeddings * mask).sum(dim=1, dtype=acc)  # (B, H)
    count = torch.clamp(mask.sum(dim=1, dtype=acc), min=1e-9)  # (B, 1)
    denominator = count if mode == "mean" else torch.sqrt(count)
    return (total / denominator).to(token_embeddings.dtype)


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

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> SentenceEmbeddingOutput | tuple[Tensor, ...]:
        """Args: ids (B, S) and the (B, S) attention mask (pooling only counts real tokens).
        Returns ``sentence_embedding`` (B, H) and ``token_embeddings`` (B, S, H)."""
        out = self.run_bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs,
        )
        tokens = out.last_hidden_state
        embedding = pool(tokens, attention_mask, self.pooling)
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

    def save_extra_files(self, folder: Path) -> None:
        """Write ``modules.json`` and ``1_Pooling/config.json`` (called by ``save_pretrained``), so
        sentence-transformers, and bertzoo, load the folder with the same pooling and normalisation."""
        folder = Path(folder)
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ]
        if self.normalize:
            modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (folder / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
        (folder / "1_Pooling").mkdir(exist_ok=True)
        pooling: dict[str, Any] = {"word_embedding_dimension": self.spec.hidden_size}
        pooling.update({key: self.pooling == mode for key, mode in _LEGACY_POOLING_KEYS.items()})
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n", encoding="utf-8")
