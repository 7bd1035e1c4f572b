"""``bertzoo embed --engine ray``: a shard-folder job whose embedding runs on a Ray cluster.

The folder, the manifest, the lock, resume and the chunk cut are the local engine's
(:mod:`bertzoo.corpus.run`): only where the vectors are computed changes. So a folder started by
one engine can be resumed by the other, and the vectors are the same bit for bit (the same rows
are embedded together, by the same function, :func:`bertzoo.corpus.embed_chunk`).

How a run goes:

1. The driver scans the input (one file, a folder or a glob; text, JSON lines or parquet, read by
   :class:`bertzoo.corpus.InputSource`, so rows and errors are exactly the local engine's),
   fingerprints it and notes where every chunk starts (byte offset or parquet row).
2. A Ray Data read (:class:`ChunkDatasource`) turns each chunk into one block of ``row``,
   ``chunk`` and ``text``, read on the cluster from those positions (the input must be on storage
   every node sees), starting after the manifest's last shard.
3. An actor pool (:func:`bertzoo.integrations.ray.embed`) embeds each chunk; dead actors are
   restarted and their chunk is retried.
4. The driver takes the results in input order (``preserve_order``), checks that the rows follow
   on, and writes shards and manifest with :func:`bertzoo.corpus.run.write_shards`.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from bertzoo.corpus.folder import check_job_options, load_pipeline
from bertzoo.corpus.guards import check_folder_output
from bertzoo.corpus.lock import FolderLock
from bertzoo.corpus.manifest import create_folder, model_fingerprint, prepare_folder
from bertzoo.corpus.run import Position, next_chunk_rows, start_manifest, write_shards
from bertzoo.corpus.shards import DEFAULT_FORMAT, DEFAULT_SHARD_SIZE
from bertzoo.corpus.sources import InputSource
from bertzoo.corpus.stream import DEFAULT_CHUNK_SIZE, StreamChunk
from bertzoo.errors import BertzooError, InputError
from bertzoo.integrations.ray import EmbedActor, actor_pool, actor_settings, require_ray

INPUT_SUFFIXES = (".txt", ".jsonl", ".ndjson", ".parquet")


@dataclass(frozen=True)
class PlannedChunk:
    """One chunk of the input: rows ``[start, start + count)``, read from ``segments``.

    Attributes:
        segments: ``(file index, offset, line, rows)`` per input file the chunk covers.
        end: where the next row starts (the manifest's ``input_end``).
    """

    index: int
    start: int
    count: int
    segments: tuple[tuple[int, int, int, int], ...]
    end: Position


def input_files(spec: str) -> list[str]:
    """``--input`` as files: one file, a folder's input files (sorted), or a glob's matches (sorted).

    Raises:
        InputError: nothing matches, or a folder without ``.txt``/``.jsonl``/``.parquet`` files.
    """
    if glob.has_magic(spec):
        found = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
        if not found:
            raise InputError(f"--input {spec!r} matches no file; check the pattern (quote it so the shell "
                             "leaves it to bertzoo)")
        return found
    if os.path.isdir(spec):
        found = sorted(str(p) for p in Path(spec).iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix in INPUT_SUFFIXES)
        if not found:
            raise InputError(f"--input folder {spec!r} holds no {', '.join(INPUT_SUFFIXES)} file; "
                             "give a file, a folder of input files, or a glob")
        return found
    if not os.path.isfile(spec):
        raise InputError(f"--input {spec!r} is not a file, a folder or a glob that matches files; check the path")
    return [spec]


def input_sources(spec: str, field: str | None, max_line_bytes: int | None) -> list[InputSource]:
    """An :class:`InputSource` per file of ``spec``, all of one format.

    Raises:
        InputError: files of different formats (run them as separate jobs).
    """
    sources = [InputSource.from_path(p, field, max_line_bytes=max_line_bytes) for p in input_files(spec)]
    formats = sorted({s.format for s in sources})
    if len(formats) > 1:
        raise InputError(f"--input {spec!r} mixes formats ({', '.join(formats)}); embed each format as its own "
                         "job (one folder each), or narrow the glob")
    return sources


def plan_chunks(sources: list[InputSource], spec: str, shard_size: int, chunk_size: int,
                ) -> tuple[dict[str, Any], list[PlannedChunk]]:
    """Scan every file (each row read and checked, as the local engine's scan does) and cut the chunks.

    Returns:
        The manifest's ``input`` block (for one file, exactly the local engine's; for several, with
        a ``files`` list and a sha256 over their names and digests) and the chunks in input order.

    Raises:
        InputError: a bad line, named by file and line.
    """
    from bertzoo.corpus.manifest import file_digest

    multi = len(sources) > 1
    chunks: list[PlannedChunk] = []
    segments: list[list[int]] = []  # [file, offset, line, rows] of the chunk being cut
    files: list[dict[str, Any]] = []
    row = start = 0
    end: Position = {}

    def close() -> None:
        chunks.append(PlannedChunk(len(chunks), start, row - start,
                                   tuple((s[0], s[1], s[2], s[3]) for s in segments), end))
        segments.clear()

    for f, source in enumerate(sources):
        position, rows_before = (0, 1), row
        for _, offset, line in source.rows():
            if not segments:
                start = row
            if not segments or segments[-1][0] != f:
                segments.append([f, position[0], position[1], 0])
            segments[-1][3] += 1
            row += 1
            position = (offset, line)
            end = {"file": f, "offset": offset, "line": line} if multi else {"offset": offset, "line": line}
            if row - start == next_chunk_rows(start, shard_size, chunk_size):
                close()
        digest, size = file_digest(source.path)
        files.append({"path": source.path, "rows": row - rows_before, "bytes": size, "sha256": digest})
    if segments:
        close()
    first = sources[0]
    if not multi:
        return {"path": first.path, "format": first.format, "field": first.field, "rows": row,
                "bytes": files[0]["bytes"], "sha256": files[0]["sha256"]}, chunks
    h = hashlib.sha256()
    for entry in files:
        h.update(f"{entry['path']}\0{entry['sha256']}\0".encode())
    return {"path": spec, "format": first.format, "field": first.field, "rows": row,
            "bytes": sum(e["bytes"] for e in files), "sha256": "sha256:" + h.hexdigest(), "files": files}, chunks


def _read_chunks(sources: list[InputSource], chunks: list[PlannedChunk]) -> Iterator[Any]:
    """One pyarrow table (``row``, ``chunk``, ``text``) per planned chunk, read from its segments."""
    import pyarrow as pa

    for chunk in chunks:
        texts: list[str] = []
        for f, offset, line, count in chunk.segments:
            texts.extend(text for text, _, _ in islice(sources[f].rows(offset=offset, line=line), count))
        if len(texts) != chunk.count:
            raise InputError(f"chunk {chunk.index} of the input read {len(texts)} rows where the scan found "
                             f"{chunk.count}: the input changed during the run (or differs on this node); "
                             "keep it unchanged and on storage every node sees, then --resume")
        yield pa.table({"row": pa.array(np.arange(chunk.start, chunk.start + chunk.count, dtype=np.int64)),
                        "chunk": pa.array(np.full(chunk.count, chunk.index, dtype=np.int64)),
                        "text": pa.array(texts, type=pa.string())})


def chunk_datasource(sources: list[InputSource], chunks: list[PlannedChunk]) -> Any:
    """A Ray Data datasource reading ``chunks`` (in order, one block per chunk) from ``sources``."""
    require_ray()
    import pyarrow as pa
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    schema = pa.schema([("row", pa.int64()), ("chunk", pa.int64()), ("text", pa.string())])

    class ChunkDatasource(Datasource):  # type: ignore[misc]
        def get_name(self) -> str:
            return "BertzooChunks"

        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[Any]:
            tasks = max(1, min(parallelism, len(chunks)))
            bounds = np.linspace(0, len(chunks), tasks + 1).astype(int)
            out = []
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                group = chunks[a:b]
                if not group:
                    continue
                files = tuple(sorted({sources[s[0]].path for c in group for s in c.segments}))
                meta = BlockMetadata(num_rows=sum(c.count for c in group), size_bytes=None, exec_stats=None,
                                     input_files=files)
                out.append(ReadTask(functools.partial(_read_chunks, sources, group), meta, schema=schema))
            return out

    return ChunkDatasource()


@contextlib.contextmanager
def ray_session(address: str | None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Ray, connected for the run: the running session, else ``address`` / ``RAY_ADDRESS``, else a
    local cluster started here (and stopped at the end)."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    options: dict[str, Any] = {"logging_level": logging.WARNING, "configure_logging": True}
    if address == "local":
        options.update(include_dashboard=False, num_cpus=num_cpus)
    ray.init(address=address, **options)
    try:
        yield ray
    finally:
        ray.shutdown()


def _ordered_results(ds: Any, chunks: list[PlannedChunk], precision: str) -> Iterator[tuple[StreamChunk, Position]]:
    """The embedded chunks in input order, as :func:`write_shards` takes them (rows checked to follow on)."""
    planned = iter(chunks)
    current: PlannedChunk | None = None
    parts: list[dict[str, np.ndarray]] = []
    have = 0
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
        n, at = len(batch["row"]), 0
        while at < n:
            if current is None:
                current = next(planned, None)
                if current is None:
                    raise BertzooError("Ray Data returned more rows than the input holds; this is a bug: "
                                       "please report it")
            take = min(current.count - have, n - at)
            part = {k: v[at:at + take] for k, v in batch.items()}
            expected = np.arange(current.start + have, current.start + have + take)
            if not np.array_equal(part["row"], expected):
                raise BertzooError(f"Ray Data returned rows {part['row'][:3].tolist()}... where rows "
                                   f"{expected[:3].tolist()}... were due (order not preserved); please report it")
            parts.append(part)
            have += take
            at += take
            if have == current.count:
                yield StreamChunk(
                    current.start, np.concatenate([p["embedding"] for p in parts]),
                    np.concatenate([p["tokens"] for p in parts]).astype(np.int32),
                    np.concatenate([p["truncated"] for p in parts]).astype(bool),
                    np.concatenate([p["scale"] for p in parts]).astype(np.float32) if precision == "int8" else None,
                ), current.end
                current, parts, have = None, [], 0
    if current is not None or next(planned, None) is not None:
        raise BertzooError("Ray Data returned fewer rows than the input holds; this is a bug: please report it")


@dataclass(frozen=True)
class RayOptions:
    """Where and how the actors run.

    Attributes:
        address: the cluster (default ``RAY_ADDRESS``, else a local one started for the run).
        actors: actors in the pool (default: the cluster's CPUs, or GPUs, over ``num_cpus`` / ``num_gpus``).
        num_cpus, num_gpus: per actor.
        max_restarts: restarts of a dead actor (default unlimited; the chunk it held is retried).
    """

    address: str | None = None
    actors: int | None = None
    num_cpus: float = 1
    num_gpus: float = 0
    max_restarts: int | None = None

    def pool_size(self, ray: Any) -> int:
        if self.actors is not None:
            if self.actors < 1:
                raise InputError(f"--ray-actors {self.actors} must be at least 1")
            return self.actors
        resources = ray.cluster_resources()
        if self.num_gpus:
            return max(1, int(resources.get("GPU", 0) // self.num_gpus))
        return max(1, int(resources.get("CPU", 1) // max(self.num_cpus, 1e-9)))


def embed_to_folder_ray(
    input: str,
    folder: str | os.PathLike[str],
    model: str | os.PathLike[str] | None = None,
    *,
    field: str | None = None,
    max_line_bytes: int | None = None,
    head: str | None = None,
    resume: bool = False,
    shard_size: int = DEFAULT_SHARD_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    format: str = DEFAULT_FORMAT,
    truncate: str = "warn",
    normalize: bool | None = None,
    dim: int | None = None,
    precision: str = "float32",
    batch_tokens: int | None = None,
    compute: str | None = None,
    threads: int | None = None,
    device: str | None = None,
    progress: bool | None = None,
    say: Callable[[str], None] | None = None,
    ray_options: RayOptions | None = None,
) -> dict[str, Any]:
    """:func:`bertzoo.corpus.embed_to_folder` with the embedding on Ray; returns the manifest.

    ``input`` is a file, a folder of input files or a glob (files in sorted order, one format).
    The other arguments are :func:`~bertzoo.corpus.embed_to_folder`'s; ``ray_options`` says where
    the actors run. The folder is locked and written by this process only.

    Raises:
        RayMissingError: ray[data] is not installed.
        InputError, FolderLockedError, NonFiniteVectorError: as :func:`~bertzoo.corpus.embed_to_folder`
            (an error raised in an actor is re-raised here as itself).
    """
    say = say or (lambda message: None)
    ray_options = ray_options or RayOptions()
    require_ray()
    root = Path(folder)
    stream_options = check_job_options(format, shard_size, chunk_size, truncate, normalize, dim, precision,
                                       batch_tokens)
    sources = input_sources(input, field, max_line_bytes)
    check_folder_output(root, inputs=[s.path for s in sources])
    create_folder(root)
    with FolderLock(root):
        previous = prepare_folder(root, resume)
        # the driver loads the model too: the manifest records its width, limits and fingerprint
        pipe = load_pipeline("embed", model, head=head, compute=compute, device="cpu")
        record, chunks = plan_chunks(sources, input, shard_size, chunk_size)
        manifest = start_manifest(root, record, pipe, previous, model, stream_options, say, format=format,
                                  shard_size=shard_size, chunk_size=chunk_size)
        if manifest["complete"]:
            say(f"{root} is already complete ({manifest['rows_done']:,} rows)")
            return manifest
        todo = [c for c in chunks if c.start >= manifest["rows_done"]]
        if not todo:  # an empty input, or a run killed after its last shard: only the manifest is left to finish
            return write_shards(root, manifest, iter(()), stream_options, say, shard_size=shard_size,
                                progress=progress)
        with ray_session(ray_options.address) as ray, _job_context(ray):
            actors = ray_options.pool_size(ray)
            say(f"embedding {sum(c.count for c in todo):,} rows in {len(todo):,} chunks on {actors} Ray actor"
                f"{'s' if actors != 1 else ''}")
            manifest["timing"]["engine"] = {"name": "ray", "actors": actors, "num_cpus": ray_options.num_cpus,
                                            "num_gpus": ray_options.num_gpus}
            # reading a chunk is light: reads take no CPU, so a pool that fills the cluster cannot starve them
            # one block per chunk (no splitting to reach Ray's default block count), so a chunk is embedded whole
            ds = ray.data.read_datasource(chunk_datasource(sources, todo), num_cpus=0, concurrency=actors + 1,
                                          override_num_blocks=len(todo))
            options, threads = actor_settings(head, compute, device, ray_options.num_gpus, threads, ray_options.num_cpus)
            constructor = {"model": None if model is None else str(model),
                           "fingerprint": model_fingerprint(pipe.folder), "pipeline": options, "threads": threads,
                           "options": stream_options, "text_column": "text", "output_column": "embedding",
                           "group_column": "chunk", "corpus": True}
            out = actor_pool(ds, EmbedActor, constructor, concurrency=actors, num_cpus=ray_options.num_cpus,
                             num_gpus=ray_options.num_gpus, batch_size=None, max_restarts=ray_options.max_restarts,
                             ray_remote_args=None)
            with _actor_errors():
                return write_shards(root, manifest, _ordered_results(out, todo, precision), stream_options, say,
                                    shard_size=shard_size, progress=progress)


@contextlib.contextmanager
def _job_context(ray: Any) -> Iterator[None]:
    """Ray Data settings for datasets made inside: input order; an actor's exception raised as itself (not
    as Ray Data's UserCodeException, which loses it); no progress bars (the job draws its own)."""
    context = ray.data.DataContext.get_current()
    saved = (context.execution_options.preserve_order, context.raise_original_map_exception,
             context.enable_progress_bars)
    context.execution_options.preserve_order = context.raise_original_map_exception = True
    context.enable_progress_bars = False
    try:
        yield
    finally:
        (context.execution_options.preserve_order, context.raise_original_map_exception,
         context.enable_progress_bars) = saved


@contextlib.contextmanager
def _actor_errors() -> Iterator[None]:
    """Re-raise a bertzoo error that an actor raised (wrapped by Ray, message and remote traceback in one)
    as the original, so the CLI prints its one line."""
    try:
        yield
    except Exception as exc:
        original: BaseException | None = None
        cause: BaseException | None = exc
        seen: set[int] = set()
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            # Ray's wrappers may subclass the cause's type: the original is the one bertzoo defined
            if isinstance(cause, BertzooError) and type(cause).__module__.startswith("bertzoo."):
                original = cause
            cause = getattr(cause, "cause", None) or cause.__cause__
        if original is None or original is exc:
            raise
        raise original from None


__all__ = ["INPUT_SUFFIXES", "PlannedChunk", "RayOptions", "chunk_datasource", "embed_to_folder_ray", "input_files",
           "input_sources", "plan_chunks", "ray_session"]
