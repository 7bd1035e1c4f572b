"""The main job on Ray Data: ``embed``, ``classify`` and ``rerank`` over a Ray Dataset.

Each function adds columns through ``Dataset.map_batches`` with an actor pool: every actor loads
one :class:`~bertzoo.inference.pipeline.Pipeline` once (the model folder is checked against the
driver's by sha256, so every node computes with the same weights), then serves batches::

    import ray, bertzoo.integrations.ray as bzray

    ds = ray.data.read_parquet("s3://bucket/docs/")
    ds = bzray.embed(ds, text_column="text", concurrency=4)             # 4 CPU actors
    ds = bzray.embed(ds, concurrency=2, num_gpus=1)                     # 2 GPU actors
    ds.write_parquet("s3://bucket/vectors/")

Actors are restarted when their process dies and the batch they held is run again (Ray Data's
``max_restarts=-1`` / ``max_task_retries=-1``; pass ``max_restarts=0`` to fail instead). Vectors
are computed by :func:`bertzoo.corpus.embed_chunk`, the local engine's own code, one call per
batch (or per value of ``group_column``). ``ray`` is imported here only: ``import bertzoo`` never
imports it. See docs/ray.md.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from bertzoo.corpus.stream import StreamOptions, embed_chunk
from bertzoo.errors import BertzooError, InputError

DEFAULT_BATCH_SIZE = 1024  # rows per actor call: tokenized, length-sorted and batched together


class RayMissingError(BertzooError, ImportError):
    """``ray[data]`` is not installed."""


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or a :class:`RayMissingError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayMissingError(f"bertzoo's Ray integration needs ray[data], which is not installed ({exc}); "
                              "pip install 'bertzoo[ray]'") from None
    return ray


def _strings(batch: dict[str, np.ndarray], column: str) -> list[str]:
    """The column's values as strings; an InputError names a missing column or a value that is not a string."""
    if column not in batch:
        raise InputError(f"the dataset has no column {column!r} (columns: {', '.join(batch)}); "
                         "name the text column with text_column=")
    values = batch[column].tolist()
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise InputError(f"column {column!r} holds {type(value).__name__} {value!r:.60} (row {i} of a batch); "
                             "every value must be a string: drop or fill those rows first")
    return values


def _groups(batch: dict[str, np.ndarray], column: str | None, n: int) -> list[tuple[int, int]]:
    """``[start, end)`` runs of equal ``column`` values (one run for the whole batch without it)."""
    if column is None or column not in batch or n == 0:
        return [(0, n)]
    keys = batch[column]
    cuts = [0, *(np.flatnonzero(keys[1:] != keys[:-1]) + 1).tolist(), n]
    return list(zip(cuts[:-1], cuts[1:], strict=True))


class _Actor:
    """One loaded pipeline, checked against the driver's model fingerprint."""

    def __init__(self, task: str, model: str | None, fingerprint: str | None, pipeline: dict[str, Any],
                 threads: int | None) -> None:
        from bertzoo.corpus.manifest import model_fingerprint
        from bertzoo.inference.pipeline import get_pipeline

        started = time.perf_counter()
        self.pipe = get_pipeline(task, model, **pipeline)
        if fingerprint is not None and model_fingerprint(self.pipe.folder) != fingerprint:
            raise InputError(f"the model {model!r} resolves to {str(self.pipe.folder)!r} on this node, whose files "
                             "differ from the driver's; give every node the same model folder (shared storage) "
                             "or the same hub id and revision")
        self.threads = threads
        self.load_seconds = time.perf_counter() - started
        self.pid = os.getpid()


class EmbedActor(_Actor):
    """``map_batches`` callable: adds ``output_column`` (``(n, D)`` vectors in the stored precision).

    With ``details``, also ``tokens``, ``truncated`` and (int8) ``scale``; with ``corpus``, returns
    only ``row``, ``chunk`` and those (the shard-folder job's columns).
    """

    def __init__(self, model: str | None, fingerprint: str | None, pipeline: dict[str, Any], threads: int | None,
                 options: StreamOptions, text_column: str, output_column: str, group_column: str | None = None,
                 details: bool = False, corpus: bool = False) -> None:
        super().__init__("embed", model, fingerprint, pipeline, threads)
        self.options, self.text_column, self.output_column = options, text_column, output_column
        self.group_column, self.details, self.corpus = group_column, details or corpus, corpus

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = _strings(batch, self.text_column)
        starts = batch["row"] if self.corpus else None  # input rows, for messages
        parts = []
        for a, b in _groups(batch, self.group_column, len(texts)):
            first = int(starts[a]) if starts is not None else a
            parts.append(embed_chunk(self.pipe, texts[a:b], first, self.options, threads=self.threads))
        width = self.pipe.dimension if self.options.dim is None else self.options.dim
        out = {k: batch[k] for k in ("row", "chunk")} if self.corpus else dict(batch)
        out[self.output_column] = (np.concatenate([p.vectors for p in parts]) if parts
                                   else np.empty((0, width), np.float32))
        if self.details:
            out["tokens"] = np.concatenate([p.tokens for p in parts]) if parts else np.empty(0, np.int32)
            out["truncated"] = np.concatenate([p.truncated for p in parts]) if parts else np.empty(0, bool)
        if self.options.precision == "int8":
            scale = "scale" if self.corpus else f"{self.output_column}_scale"
            out[scale] = np.concatenate([p.scales for p in parts if p.scales is not None]).astype(np.float32)
        return out


class ClassifyActor(_Actor):
    """``map_batches`` callable: adds the best label (``output_column``) and its score (``score_column``)."""

    def __init__(self, model: str | None, fingerprint: str | None, pipeline: dict[str, Any], threads: int | None,
                 text_column: str, pair_column: str | None, output_column: str, score_column: str,
                 batch_tokens: int | None) -> None:
        super().__init__("classify", model, fingerprint, pipeline, threads)
        self.text_column, self.pair_column = text_column, pair_column
        self.output_column, self.score_column, self.batch_tokens = output_column, score_column, batch_tokens

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts: list[Any] = _strings(batch, self.text_column)
        if self.pair_column is not None:
            texts = list(zip(texts, _strings(batch, self.pair_column), strict=True))
        results = self.pipe.classify(texts, top_k=1, batch_tokens=self.batch_tokens, progress=False,
                                     threads=self.threads) if texts else []
        out = dict(batch)
        out[self.output_column] = np.array([r["label"] for r in results], dtype=object)
        out[self.score_column] = np.array([r["score"] for r in results], dtype=np.float32)
        return out


class RerankActor(_Actor):
    """``map_batches`` callable: adds each (query, document) row's relevance score (``output_column``)."""

    def __init__(self, model: str | None, fingerprint: str | None, pipeline: dict[str, Any], threads: int | None,
                 query_column: str, document_column: str, output_column: str, raw: bool,
                 batch_tokens: int | None) -> None:
        super().__init__("rerank", model, fingerprint, pipeline, threads)
        self.query_column, self.document_column, self.output_column = query_column, document_column, output_column
        self.raw, self.batch_tokens = raw, batch_tokens

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        queries, documents = _strings(batch, self.query_column), _strings(batch, self.document_column)
        scores = np.empty(len(queries), dtype=np.float32)
        for a, b in _groups(batch, self.query_column, len(queries)):  # one rerank call per run of one query
            for r in self.pipe.rerank(queries[a], documents[a:b], raw=self.raw, batch_tokens=self.batch_tokens,
                                      progress=False, threads=self.threads):
                scores[a + r["index"]] = r["score"]
        out = dict(batch)
        out[self.output_column] = scores
        return out


def _driver_fingerprint(model: str | os.PathLike[str] | None) -> str:
    """The sha256 of the model folder as the driver resolves it (actors compare theirs to it)."""
    from bertzoo.checkpoint.default_model import resolve_model
    from bertzoo.corpus.manifest import model_fingerprint

    return model_fingerprint(resolve_model(model))


def actor_pool(ds: Any, actor: type, constructor: dict[str, Any], *, concurrency: int | tuple[int, int],
               num_cpus: float, num_gpus: float, batch_size: int | None, max_restarts: int | None,
               ray_remote_args: dict[str, Any] | None) -> Any:
    """``ds.map_batches(actor, ...)`` on a pool of ``concurrency`` actors (a fixed size, or ``(min, max)``)."""
    if num_cpus < 0 or num_gpus < 0:
        raise InputError(f"num_cpus={num_cpus} and num_gpus={num_gpus} must not be negative")
    remote = dict(ray_remote_args or {})
    if max_restarts is not None:
        remote["max_restarts"] = max_restarts
    if num_gpus:
        remote["num_gpus"] = num_gpus
    ray = require_ray()
    pool = (ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
            if isinstance(concurrency, tuple) else ray.data.ActorPoolStrategy(size=concurrency))
    return ds.map_batches(actor, fn_constructor_kwargs=constructor, batch_size=batch_size, batch_format="numpy",
                          compute=pool, num_cpus=num_cpus, **remote)


def actor_settings(head: str | None, compute: str | None, device: str | None, num_gpus: float,
                      threads: int | None, num_cpus: float) -> tuple[dict[str, Any], int | None]:
    """The actors' pipeline options (GPU actors default to ``cuda``) and torch threads (CPU actors: their CPUs)."""
    device = device or ("cuda" if num_gpus else None)
    if threads is None and not num_gpus:
        threads = max(1, int(num_cpus))
    return {"head": head, "compute": compute, "device": device}, threads


def embed(ds: Any, model: str | os.PathLike[str] | None = None, text_column: str = "text",
          output_column: str = "embedding", *, head: str | None = None, compute: str | None = None,
          device: str | None = None, normalize: bool | None = None, dim: int | None = None,
          precision: str = "float32", truncate: str = "silent", batch_tokens: int | None = None,
          details: bool = False, group_column: str | None = None, concurrency: int | tuple[int, int] = 1,
          num_cpus: float = 1, num_gpus: float = 0, threads: int | None = None,
          batch_size: int | None = DEFAULT_BATCH_SIZE, max_restarts: int | None = None,
          ray_remote_args: dict[str, Any] | None = None) -> Any:
    """A Ray Dataset with sentence vectors of ``text_column`` added as ``output_column``.

    Args:
        ds: a ``ray.data.Dataset`` with a string column ``text_column``.
        model: as :func:`bertzoo.embed` (default all-MiniLM-L6-v2); every node must resolve it to
            the same files.
        normalize, dim, precision, truncate, batch_tokens: as :func:`bertzoo.embed_stream`
            (``truncate="warn"`` cuts quietly here: ask for ``details`` to count cut texts).
            ``precision="int8"`` adds ``<output_column>_scale``.
        details: also add ``tokens`` (whole-text token counts) and ``truncated``.
        group_column: rows with equal consecutive values are embedded together (the shard-folder
            job groups by chunk so that vectors equal the local engine's bit for bit).
        concurrency: actors in the pool (``(min, max)`` lets Ray Data scale it).
        num_cpus, num_gpus: per actor; GPU actors run on ``cuda`` unless ``device`` says otherwise.
        threads: torch threads per actor (default: ``num_cpus`` for CPU actors).
        batch_size: rows per actor call (None: one block).
        max_restarts: actor restarts after its process dies (default Ray Data's: unlimited, and the
            lost batch is retried); 0 fails the job instead.
        ray_remote_args: more options for the actors (``memory``, ``resources``, ``runtime_env``...).

    Raises:
        RayMissingError: ray[data] is not installed.
        InputError: a bad option (checked here, before Ray runs anything).
    """
    options = StreamOptions(truncate, normalize, dim, precision, batch_tokens)
    options.check()
    pipeline, threads = actor_settings(head, compute, device, num_gpus, threads, num_cpus)
    constructor = {"model": None if model is None else str(model), "fingerprint": _driver_fingerprint(model),
                   "pipeline": pipeline, "threads": threads, "options": options, "text_column": text_column,
                   "output_column": output_column, "group_column": group_column, "details": details}
    return actor_pool(ds, EmbedActor, constructor, concurrency=concurrency, num_cpus=num_cpus, num_gpus=num_gpus,
                      batch_size=batch_size, max_restarts=max_restarts, ray_remote_args=ray_remote_args)


def classify(ds: Any, model: str | os.PathLike[str] | None = None, text_column: str = "text",
             output_column: str = "label", *, pair_column: str | None = None, score_column: str = "score",
             head: str | None = None, compute: str | None = None, device: str | None = None,
             batch_tokens: int | None = None, concurrency: int | tuple[int, int] = 1, num_cpus: float = 1,
             num_gpus: float = 0, threads: int | None = None, batch_size: int | None = DEFAULT_BATCH_SIZE,
             max_restarts: int | None = None, ray_remote_args: dict[str, Any] | None = None) -> Any:
    """A Ray Dataset with the best label of each text (or text pair, with ``pair_column``) and its score.

    Scores are :func:`bertzoo.classify`'s (softmax or sigmoid as the model's problem type says).
    The actor options are :func:`embed`'s.
    """
    pipeline, threads = actor_settings(head, compute, device, num_gpus, threads, num_cpus)
    constructor = {"model": None if model is None else str(model), "fingerprint": _driver_fingerprint(model),
                   "pipeline": pipeline, "threads": threads, "text_column": text_column, "pair_column": pair_column,
                   "output_column": output_column, "score_column": score_column, "batch_tokens": batch_tokens}
    return actor_pool(ds, ClassifyActor, constructor, concurrency=concurrency, num_cpus=num_cpus, num_gpus=num_gpus,
                      batch_size=batch_size, max_restarts=max_restarts, ray_remote_args=ray_remote_args)


def rerank(ds: Any, model: str | os.PathLike[str], query_column: str = "query", document_column: str = "document",
           output_column: str = "score", *, raw: bool = False, head: str | None = None, compute: str | None = None,
           device: str | None = None, batch_tokens: int | None = None, concurrency: int | tuple[int, int] = 1,
           num_cpus: float = 1, num_gpus: float = 0, threads: int | None = None,
           batch_size: int | None = DEFAULT_BATCH_SIZE, max_restarts: int | None = None,
           ray_remote_args: dict[str, Any] | None = None) -> Any:
    """A Ray Dataset with each (query, document) row's relevance score from a cross-encoder.

    Scores are :func:`bertzoo.rerank`'s (the sigmoid of the logit; the logit with ``raw``); sort
    or group the dataset afterwards to rank. The actor options are :func:`embed`'s.
    """
    pipeline, threads = actor_settings(head, compute, device, num_gpus, threads, num_cpus)
    constructor = {"model": str(model), "fingerprint": _driver_fingerprint(model), "pipeline": pipeline,
                   "threads": threads, "query_column": query_column, "document_column": document_column,
                   "output_column": output_column, "raw": raw, "batch_tokens": batch_tokens}
    return actor_pool(ds, RerankActor, constructor, concurrency=concurrency, num_cpus=num_cpus, num_gpus=num_gpus,
                      batch_size=batch_size, max_restarts=max_restarts, ray_remote_args=ray_remote_args)


__all__ = ["DEFAULT_BATCH_SIZE", "ClassifyActor", "EmbedActor", "RayMissingError", "RerankActor", "actor_pool",
           "actor_settings",
           "classify", "embed", "require_ray", "rerank"]
