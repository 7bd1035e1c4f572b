"""bertzoo.integrations.llamaindex.BertzooEmbedding with the real llama-index-core: the vectors are
bertzoo.embed's, queries and texts get the folder's prompts, and a real VectorStoreIndex retrieves with
it, offline (every connection off the loopback interface is refused during these tests)."""

from __future__ import annotations

import asyncio
import importlib
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bertzoo

pytest.importorskip("llama_index.core", reason="the llamaindex extra (dev extra)")
from bertzoo.integrations.llamaindex import BertzooEmbedding  # noqa: E402

TEXTS = ["Cats purr when they are content.", "The stock market fell sharply on Monday.",
         "Photosynthesis turns light into chemical energy.", "A recipe for sourdough bread."]
QUERY = "why do cats purr?"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """llama-index can fetch tokenizers and NLTK data on first use: any such attempt fails the test."""
    real_connect = socket.socket.connect

    def loopback_only(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access to {address!r} during an offline test")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    yield


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, prompted_folder: Callable[..., Path]) -> Path:
    """The tiny BERT as a sentence-transformers folder with prompts for queries and texts (default: query)."""
    prompts = {"query": "query: ", "text": "passage: "}
    return prompted_folder(tiny_bert, tmp_path_factory.mktemp("li") / "tiny-prompts", prompts)


@pytest.fixture(scope="module")
def embedding(folder: Path) -> BertzooEmbedding:
    return BertzooEmbedding(folder)


def test_vectors_are_bertzoo_embed_with_the_prompts(embedding: BertzooEmbedding, folder: Path) -> None:
    query = np.asarray(embedding.get_query_embedding(QUERY))
    batch = np.asarray(embedding.get_text_embedding_batch(TEXTS))
    np.testing.assert_array_equal(query, bertzoo.embed([QUERY], folder, prompt_name="query")[0])
    np.testing.assert_array_equal(batch, bertzoo.embed(TEXTS, folder, prompt_name="text"))
    np.testing.assert_array_equal(np.asarray(embedding.get_text_embedding(TEXTS[0])), batch[0])
    np.testing.assert_allclose(batch, bertzoo.embed(["passage: " + t for t in TEXTS], folder, prompt=""), atol=1e-6)
    assert not np.allclose(query, bertzoo.embed([QUERY], folder, prompt="")[0], atol=1e-3)
    assert embedding.model_name == str(folder) and BertzooEmbedding.class_name() == "BertzooEmbedding"


def test_async_methods_give_the_same_vectors(embedding: BertzooEmbedding) -> None:
    assert asyncio.run(embedding.aget_query_embedding(QUERY)) == embedding.get_query_embedding(QUERY)
    assert asyncio.run(embedding.aget_text_embedding(TEXTS[1])) == embedding.get_text_embedding(TEXTS[1])
    assert asyncio.run(embedding.aget_text_embedding_batch(TEXTS)) == embedding.get_text_embedding_batch(TEXTS)


def test_instructions_and_prompt_names(embedding: BertzooEmbedding, folder: Path) -> None:
    given = BertzooEmbedding(embedding.pipeline, query_instruction="Represent the question: ", text_instruction="")
    np.testing.assert_array_equal(np.asarray(given.get_query_embedding(QUERY)),
                                  bertzoo.embed([QUERY], folder, prompt="Represent the question: ")[0])
    np.testing.assert_array_equal(np.asarray(given.get_text_embedding(TEXTS[0])),
                                  bertzoo.embed([TEXTS[0]], folder, prompt="")[0])
    swapped = BertzooEmbedding(embedding.pipeline, text_prompt_name="query")
    assert swapped.get_text_embedding(QUERY) == embedding.get_query_embedding(QUERY)
    with pytest.raises(bertzoo.InputError, match=r"\(query, text\)"):
        BertzooEmbedding(folder, text_prompt_name="document")


def test_retrieval_in_a_vector_store_index(embedding: BertzooEmbedding) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode

    plain = BertzooEmbedding(embedding.pipeline, query_instruction="", text_instruction="")
    nodes = [TextNode(text=text, id_=f"doc-{i}") for i, text in enumerate(TEXTS)]
    retriever = VectorStoreIndex(nodes, embed_model=plain).as_retriever(similarity_top_k=1)
    for i, text in enumerate(TEXTS):
        (hit,) = retriever.retrieve(text)
        assert hit.node.node_id == f"doc-{i}" and hit.score == pytest.approx(1.0, abs=1e-5)


def test_without_llama_index_a_bertzoo_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "bertzoo.integrations.llamaindex" or m.startswith("llama_index")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "llama_index", None)  # what "not installed" looks like to import
    with pytest.raises(bertzoo.BertzooError, match=r"pip install 'bertzoo\[llamaindex\]'"):
        importlib.import_module("bertzoo.integrations.llamaindex")
