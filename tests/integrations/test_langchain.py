"""bertzoo.integrations.langchain.BertzooEmbeddings with the real langchain-core: the vectors are
bertzoo.embed's, queries and documents get the folder's prompts as sentence-transformers' encode_query /
encode_document give them, and a real InMemoryVectorStore retrieves with it."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import bertzoo

pytest.importorskip("langchain_core", reason="the langchain extra (dev extra)")
from bertzoo.integrations.langchain import BertzooEmbeddings  # noqa: E402

DOCS = ["Cats purr when they are content.", "The stock market fell sharply on Monday.",
        "Photosynthesis turns light into chemical energy.", "A recipe for sourdough bread."]
QUERY = "why do cats purr?"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, prompted_folder: Callable[..., Path]) -> Path:
    """The tiny BERT as a sentence-transformers folder with e5-style prompts (default: query)."""
    prompts = {"query": "query: ", "passage": "passage: "}
    return prompted_folder(tiny_bert, tmp_path_factory.mktemp("lc") / "tiny-prompts", prompts)


@pytest.fixture(scope="module")
def embeddings(folder: Path) -> BertzooEmbeddings:
    return BertzooEmbeddings(folder)


def test_vectors_are_bertzoo_embed_with_the_prompts(embeddings: BertzooEmbeddings, folder: Path) -> None:
    docs = np.asarray(embeddings.embed_documents(DOCS))
    query = np.asarray(embeddings.embed_query(QUERY))
    np.testing.assert_array_equal(docs, bertzoo.embed(DOCS, folder, prompt_name="passage"))
    np.testing.assert_array_equal(query, bertzoo.embed([QUERY], folder, prompt_name="query")[0])
    # the prompt is really there: "query: " + text without a prompt gives the same vector
    np.testing.assert_allclose(query, bertzoo.embed(["query: " + QUERY], folder, prompt="")[0], atol=1e-6)
    assert not np.allclose(query, bertzoo.embed([QUERY], folder, prompt="")[0], atol=1e-3)
    assert docs.shape == (4, 32) and np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)  # Normalize module
    assert embeddings.embed_documents([]) == []


def test_async_methods_give_the_same_vectors(embeddings: BertzooEmbeddings) -> None:
    assert asyncio.run(embeddings.aembed_query(QUERY)) == embeddings.embed_query(QUERY)
    assert asyncio.run(embeddings.aembed_documents(DOCS)) == embeddings.embed_documents(DOCS)


def test_prompt_options(embeddings: BertzooEmbeddings, folder: Path) -> None:
    given = BertzooEmbeddings(folder, query_prompt="search: ", document_prompt="", normalize=False)
    np.testing.assert_array_equal(np.asarray(given.embed_query(QUERY)),
                                  bertzoo.embed([QUERY], folder, prompt="search: ", normalize=False)[0])
    np.testing.assert_array_equal(np.asarray(given.embed_documents(DOCS)),
                                  bertzoo.embed(DOCS, folder, prompt="", normalize=False))
    by_name = BertzooEmbeddings(embeddings.pipeline, document_prompt_name="query")  # a loaded Pipeline works too
    assert by_name.pipeline is embeddings.pipeline
    assert by_name.embed_documents([QUERY])[0] == embeddings.embed_query(QUERY)
    with pytest.raises(bertzoo.InputError, match=r"\(query, passage\)"):
        BertzooEmbeddings(folder, query_prompt_name="nope")
    with pytest.raises(bertzoo.InputError, match="list of texts"):
        embeddings.embed_documents("one string")  # type: ignore[arg-type]


def test_retrieval_in_a_langchain_vector_store(folder: Path) -> None:
    from langchain_core.vectorstores import InMemoryVectorStore

    plain = BertzooEmbeddings(folder, query_prompt="", document_prompt="")  # a query equal to a document
    store = InMemoryVectorStore.from_texts(DOCS, plain, metadatas=[{"i": i} for i in range(len(DOCS))])
    for i, text in enumerate(DOCS):
        hit, score = store.similarity_search_with_score(text, k=1)[0]
        assert hit.page_content == text and hit.metadata == {"i": i} and score == pytest.approx(1.0, abs=1e-5)


def test_without_langchain_a_bertzoo_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "bertzoo.integrations.langchain" or m.startswith("langchain_core")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "langchain_core", None)  # what "not installed" looks like to import
    with pytest.raises(bertzoo.BertzooError, match=r"pip install 'bertzoo\[langchain\]'"):
        importlib.import_module("bertzoo.integrations.langchain")


def test_importing_bertzoo_does_not_import_langchain() -> None:
    import subprocess

    code = ("import sys, bertzoo, bertzoo.integrations, bertzoo.inference.pipeline; "
            "print(sorted(m for m in sys.modules if m.startswith(('langchain', 'llama_index'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
