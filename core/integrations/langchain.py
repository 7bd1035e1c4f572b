"""LangChain embeddings over bertzoo: :class:`BertzooEmbeddings` (``pip install 'bertzoo[langchain]'``).

::

    from bertzoo.integrations.langchain import BertzooEmbeddings
    from langchain_core.vectorstores import InMemoryVectorStore

    store = InMemoryVectorStore.from_texts(texts, BertzooEmbeddings("intfloat/e5-small-v2"))
    store.similarity_search("what is bertzoo?", k=3)

Queries and documents get the folder's prompts as sentence-transformers' ``encode_query`` /
``encode_document`` give them (see :mod:`bertzoo.integrations.embedding_adapter`). Importing this
module without langchain-core installed raises a :class:`bertzoo.BertzooError` naming the extra.
"""

from __future__ import annotations

import os
from typing import Any

from bertzoo.inference.pipeline import Pipeline
from bertzoo.integrations.embedding_adapter import PromptedEmbedder, missing_extra

try:
    from langchain_core.embeddings import Embeddings
except ImportError as err:
    raise missing_extra("langchain-core", "langchain", "bertzoo.integrations.langchain.BertzooEmbeddings") from err


class BertzooEmbeddings(Embeddings):
    """A LangChain ``Embeddings`` computed by bertzoo (``embed_documents``, ``embed_query`` and their
    async versions, which run the sync ones in an executor as LangChain's base class does).

    Args:
        model: a folder, a hub id, a loaded :class:`bertzoo.Pipeline`, or None (all-MiniLM-L6-v2).
        compute: bertzoo's compute precision (``"float32"``, ``"bfloat16"``, ``"int8"``, ...).
        device: ``"cpu"``, ``"cuda"``, ...
        normalize: L2-normalise; None = as the model says.
        query_prompt, document_prompt: prompt texts prepended to queries / documents (``""``: none).
        query_prompt_name, document_prompt_name: names of the folder's prompts to use instead;
            by default ``query`` for queries and ``document`` / ``passage`` / ``corpus`` for
            documents when the folder defines them, else no prompt.
        batch_tokens: bertzoo's token budget per batch.
        pipeline_options: more :func:`bertzoo.inference.pipeline.get_pipeline` keywords
            (``attention``, ``max_length``, ``head``, ...).

    Raises:
        InputError: a prompt name the folder does not define.
        CheckpointError: the model cannot be loaded.
    """

    def __init__(self, model: str | os.PathLike[str] | Pipeline | None = None, *, compute: str | None = None,
                 device: str | None = None, normalize: bool | None = None, query_prompt: str | None = None,
                 query_prompt_name: str | None = None, document_prompt: str | None = None,
                 document_prompt_name: str | None = None, batch_tokens: int | None = None,
                 **pipeline_options: Any) -> None:
        self._embedder = PromptedEmbedder(
            model, compute=compute, device=device, normalize=normalize, query_prompt=query_prompt,
            query_prompt_name=query_prompt_name, document_prompt=document_prompt,
            document_prompt_name=document_prompt_name, batch_tokens=batch_tokens, **pipeline_options)

    @property
    def pipeline(self) -> Pipeline:
        """The bertzoo pipeline doing the work."""
        return self._embedder.pipeline

    def __repr__(self) -> str:
        return f"BertzooEmbeddings({self._embedder.name!r})"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per document, with the document prompt."""
        return self._embedder.embed(texts, self._embedder.document)

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query, with the query prompt."""
        return self._embedder.embed([text], self._embedder.query)[0]


__all__ = ["BertzooEmbeddings"]
