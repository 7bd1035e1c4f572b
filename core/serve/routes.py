"""The route handlers: each takes the server state and the parsed JSON body and returns a response.

Validation (:mod:`bertzoo.serve.schemas`) happens before anything is queued, so a bad request never
reaches a worker. The work itself is the offline main job's: ``Pipeline.encode_for_embedding`` and
``embed_encoded`` (through the batcher), ``Pipeline.rerank``, ``classify`` and ``fill_mask``.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.responses import JSONResponse

from bertzoo.errors import InputError
from bertzoo.serve.batcher import piece_tokens
from bertzoo.serve.schemas import (
    ApiError,
    field,
    invalid,
    positive_int,
    text_or_pairs,
    texts,
    truncate_policy,
)

if TYPE_CHECKING:
    from bertzoo.inference.pipeline import Pipeline
    from bertzoo.inference.tokenizer import FittedIds
    from bertzoo.serve.app import ServerState
    from bertzoo.serve.models import ServedModel

# a request this small is tokenized on the event loop; a larger one in a thread (the loop stays free)
INLINE_TEXTS, INLINE_CHARS = 8, 4096


@dataclass
class Embedded:
    """One request's embeddings: un-normalised ``(N, D)`` vectors and what was fitted to compute them."""

    vectors: Any
    fitted: FittedIds

    @property
    def tokens(self) -> int:
        return piece_tokens(self.fitted)

    def headers(self) -> dict[str, str]:
        return {"x-compute-tokens": str(self.tokens), "x-truncated-texts": str(int(self.fitted.truncated.sum()))}


async def embed_texts(state: ServerState, served: ServedModel, items: list[str], policy: str) -> Embedded:
    """Fit ``items`` under the truncation ``policy``, queue them on the model's batcher, await the rows."""
    import torch

    pipe = served.pipelines["embed"]
    try:
        if len(items) <= INLINE_TEXTS and sum(map(len, items)) <= INLINE_CHARS:
            fitted = pipe.encode_for_embedding(items, policy)
        else:
            fitted = await asyncio.to_thread(pipe.encode_for_embedding, items, policy)
    except InputError as exc:  # truncate=false and a text over the maximum length (TEI answers 413)
        raise ApiError(413, f"{exc}; or send truncate=true", code="input_too_long") from None
    assert served.worker is not None
    try:
        futures = served.worker.submit_embed(fitted)
    except RuntimeError as exc:
        raise ApiError(503, f"{exc}; retry on another replica") from None
    parts = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
    state.metrics.tokens(served.name, piece_tokens(fitted))
    return Embedded(parts[0] if len(parts) == 1 else torch.cat(parts), fitted)


def shaped(pipe: Pipeline, vectors: Any, *, normalize: bool, dimensions: int | None) -> np.ndarray:
    """Cut to ``dimensions`` (then re-normalised when ``normalize``), as ``bertzoo embed --dim`` does."""
    from bertzoo.inference.vectors import shape_vectors

    if dimensions is not None and dimensions > pipe.dimension:
        raise invalid(f"dimensions={dimensions} is more than the model's {pipe.dimension}; pick 1..{pipe.dimension}")
    return shape_vectors(vectors, normalize=normalize, dim=dimensions).values


async def openai_embeddings(state: ServerState, body: dict[str, Any]) -> JSONResponse:
    """``POST /v1/embeddings`` (OpenAI): ``{"input", "model", "encoding_format", "dimensions"}``."""
    items, _ = texts(body.get("input"), "input")
    model = field(body, "model", str, what="a model name")
    fmt = field(body, "encoding_format", str, "float", what='"float" or "base64"')
    if fmt not in ("float", "base64"):
        raise invalid(f"encoding_format={fmt!r} is unknown; use 'float' or 'base64'")
    dimensions = positive_int(body, "dimensions")
    field(body, "user", str, what="a string")
    served = state.models.pick("embed", model)
    pipe = served.pipelines["embed"]
    policy = truncate_policy(body, state.config.auto_truncate, windows=True)
    done = await embed_texts(state, served, items, policy)
    normalize = pipe.embedding_normalize or dimensions is not None  # OpenAI's cut vectors are unit length
    values = shaped(pipe, done.vectors, normalize=normalize, dimensions=dimensions)
    if fmt == "base64":
        little = values.astype("<f4", copy=False)
        vectors: list[Any] = [base64.b64encode(row.tobytes()).decode("ascii") for row in little]
    else:
        vectors = values.tolist()
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    usage = {"prompt_tokens": done.tokens, "total_tokens": done.tokens}
    return JSONResponse({"object": "list", "data": data, "model": served.name, "usage": usage},
                        headers=done.headers())


async def tei_embed(state: ServerState, body: dict[str, Any]) -> JSONResponse:
    """``POST /embed`` (TEI): ``{"inputs", "normalize", "truncate", "dimensions"}`` → ``[[float]]``."""
    items, _ = texts(body.get("inputs"), "inputs")
    normalize = field(body, "normalize", bool, True, what="true or false")
    dimensions = positive_int(body, "dimensions")
    served = state.models.pick("embed", field(body, "model", str, what="a model name"))
    policy = truncate_policy(body, state.config.auto_truncate, windows=True)
    done = await embed_texts(state, served, items, policy)
    values = shaped(served.pipelines["embed"], done.vectors, normalize=normalize, dimensions=dimensions)
    return JSONResponse(values.tolist(), headers=done.headers())


def _refuse_long(pipe: Pipeline, items: list[Any]) -> None:
    """``truncate=false``: a text (or pair) over the maximum length is refused, as TEI does (413)."""
    counts = pipe.tokenizer.count_tokens(items, truncation=False)
    long = np.flatnonzero(counts > pipe.max_length)
    if len(long):
        i = int(long[0])
        raise ApiError(413, f"input {i} has {int(counts[i])} tokens, more than the maximum length {pipe.max_length} "
                            "of the model; shorten it or send truncate=true", code="input_too_long")


async def _on_worker(served: ServedModel, run: Any) -> Any:
    assert served.worker is not None
    try:
        future = served.worker.submit_call(run)
    except RuntimeError as exc:
        raise ApiError(503, f"{exc}; retry on another replica") from None
    return await asyncio.wrap_future(future)


async def tei_rerank(state: ServerState, body: dict[str, Any]) -> JSONResponse:
    """``POST /rerank`` (TEI): ``{"query", "texts", "raw_scores", "return_text", "truncate"}`` →
    ``[{"index", "score", "text"?}]`` best first."""
    query = field(body, "query", str, what="a string")
    if query is None:
        raise invalid("field 'query' is missing; send the query as a string")
    (query,), _ = texts(query, "query")
    docs, single = texts(body.get("texts"), "texts")
    if single:
        raise invalid("field 'texts' is one string; send a list of the texts to rank")
    raw = field(body, "raw_scores", bool, False, what="true or false")
    return_text = field(body, "return_text", bool, False, what="true or false")
    policy = truncate_policy(body, state.config.auto_truncate)
    served = state.models.pick("rerank", field(body, "model", str, what="a model name"))
    pipe = served.pipelines["rerank"]

    def run() -> Any:
        if policy == "error":
            _refuse_long(pipe, [(query, d) for d in docs])
        return pipe.rerank(query, docs, raw=raw, return_documents=return_text, progress=False,
                           threads=state.config.threads)

    return JSONResponse(await _on_worker(served, run))


async def tei_predict(state: ServerState, body: dict[str, Any]) -> JSONResponse:
    """``POST /predict`` (TEI): ``{"inputs", "raw_scores", "truncate"}`` → every label with its score, best
    first (a list of such lists for a list of inputs)."""
    items, single = text_or_pairs(body.get("inputs"), "inputs")
    raw = field(body, "raw_scores", bool, False, what="true or false")
    policy = truncate_policy(body, state.config.auto_truncate)
    served = state.models.pick("classify", field(body, "model", str, what="a model name"))
    pipe = served.pipelines["classify"]

    def run() -> Any:
        if policy == "error":
            _refuse_long(pipe, items)
        return pipe.classify(items, top_k=None, function_to_apply="none" if raw else None, progress=False,
                             threads=state.config.threads)

    results = await _on_worker(served, run)
    return JSONResponse(results[0] if single else results)


async def fill_mask(state: ServerState, body: dict[str, Any]) -> JSONResponse:
    """``POST /fill-mask``: ``{"inputs", "top_k"}`` → ``bertzoo.fill_mask``'s predictions per text."""
    items, single = texts(body.get("inputs"), "inputs")
    top_k = positive_int(body, "top_k") or 5
    served = state.models.pick("fill-mask", field(body, "model", str, what="a model name"))
    pipe = served.pipelines["fill-mask"]
    results = await _on_worker(served, lambda: pipe.fill_mask(items, top_k=top_k, progress=False,
                                                              threads=state.config.threads))
    return JSONResponse(results[0] if single else results)


async def info(state: ServerState, body: Any) -> JSONResponse:
    """``GET /info``: the served models and the server's limits."""
    import bertzoo

    first = state.models.models[0]
    config = state.config
    return JSONResponse({
        "version": bertzoo.__version__, "model_id": first.name,
        "max_input_length": first.describe()["max_input_length"],
        "max_batch_tokens": config.batch_tokens, "max_wait_ms": config.max_wait_ms,
        "max_concurrent_requests": config.max_concurrent_requests, "max_body_bytes": config.max_body_bytes,
        "auto_truncate": config.auto_truncate, "auth": config.api_key is not None,
        "models": [m.describe() for m in state.models.models],
    })


async def openai_models(state: ServerState, body: Any) -> JSONResponse:
    """``GET /v1/models`` (OpenAI): the served model names."""
    return JSONResponse({"object": "list", "data": [
        {"id": m.name, "object": "model", "created": 0, "owned_by": "bertzoo"} for m in state.models.models]})


__all__ = ["embed_texts", "fill_mask", "info", "openai_embeddings", "openai_models", "tei_embed", "tei_predict",
           "tei_rerank"]
