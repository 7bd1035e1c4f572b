"""LlamaIndex embeddings over bertzoo: :class:`BertzooEmbedding` (``pip install 'bertzoo[llamaindex]'``).

::

    from bertzoo.integrations.llamaindex import BertzooEmbedding
    from llama_index.core import VectorStoreIndex

    index = VectorStoreIndex(nodes, embed_model=BertzooEmbedding("intfloat/e5-small-v2"))
    index.as_retriever(similarity_top_k=3).retrieve("what is bertzoo?")

Queries and texts get the folder's prompts as sentence-transformers' ``encode_query`` /
``encode_document`` give them, with LlamaIndex's ``text`` prompt name first for texts (see
:mod:`bertzoo.integrations.embedding_adapter`); ``query_instruction`` / ``text_instruction`` are
LlamaIndex's HuggingFace names for literal prompts. Importing this module without llama-index-core
installed raises a :class:`bertzoo.BertzooError` naming the extra.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from bertzoo.inference.pipeline import Pipeline
from bertzoo.integrations.embedding_adapter import DOCUMENT_NAMES, PromptedEmbedder, missing_extra

try:
    from llama_index.core.embeddings import BaseEmbedding
    from pydantic import PrivateAttr
except ImportError as err:
    raise missing_extra("llama-index-core", "llamaindex", "bertzoo.integrations.llamaindex.BertzooEmbedding") from err

# bertzoo batches by tokens itself: hand it large groups (LlamaIndex's default is 10 texts a call)
_BATCH = 256


class BertzooEmbedding(BaseEmbedding):
    """A LlamaIndex ``BaseEmbedding`` computed by bertzoo.

    Args:
        model: a folder, a hub id, a loaded :class:`bertzoo.Pipeline`, or None (all-MiniLM-L6-v2).
        compute: bertzoo's compute precision (``"float32"``, ``"bfloat16"``, ``"int8"``, ...).
        device: ``"cpu"``, ``"cuda"``, ...
        normalize: L2-normalise; None = as the model says.
        query_instruction, text_instruction: prompt texts prepended to queries / texts (``""``: none).
        query_prompt_name, text_prompt_name: names of the folder's prompts to use instead; by
            default ``query`` for queries and ``text`` / ``document`` / ``passage`` / ``corpus`` for
            texts when the folder defines them, else no prompt.
        embed_batch_size: texts per call into bertzoo (which batches by tokens within it).
        batch_tokens: bertzoo's token budget per batch.
        pipeline_options: more :func:`bertzoo.inference.pipeline.get_pipeline` keywords.

    Raises:
        InputError: a prompt name the folder does not define.
        CheckpointError: the model cannot be loaded.
    """

    _embedder: PromptedEmbedder = PrivateAttr()

    def __init__(self, model: str | os.PathLike[str] | Pipeline | None = None, *, compute: str | None = None,
                 device: str | None = None, normalize: bool | None = None, query_instruction: str | None = None,
                 text_instruction: str | None = None, query_prompt_name: str | None = None,
                 text_prompt_name: str | None = None, embed_batch_size: int = _BATCH,
                 batch_tokens: int | None = None, callback_manager: Any = None, **pipeline_options: Any) -> None:
        embedder = PromptedEmbedder(
            model, compute=compute, device=device, normalize=normalize, query_prompt=query_instruction,
            query_prompt_name=query_prompt_name, document_prompt=text_instruction,
            document_prompt_name=text_prompt_name, document_names=("text", *DOCUMENT_NAMES),
            batch_tokens=batch_tokens, **pipeline_options)
        extra = {"callback_manager": callback_manager} if callback_manager is not None else {}
        super().__init__(model_name=embedder.name, embed_batch_size=embed_batch_size, **extra)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "BertzooEmbedding"

    @property
    def pipeline(self) -> Pipeline:
        """The bertzoo pipeline doing the work."""
        return self._embedder.pipeline

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed([query], self._embedder.query)[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.embed([text], self._embedder.document)[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed(texts, self._embedder.document)

    # bertzoo runs one forward at a time per pipeline; a worker thread keeps the event loop free
    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


__all__ = ["BertzooEmbedding"]
