"""The served models: loading each once, the tasks it serves, and choosing one per request.

``--model`` takes what the other commands take (a folder, a hub id, or nothing for
all-MiniLM-L6-v2), optionally named: ``--model fast=path/to/folder``. The tasks a model serves come
from the head its checkpoint records (:func:`bertzoo.inference.engine.recorded_head`): a
sentence-transformers or plain encoder folder embeds; a sequence-classification checkpoint
classifies (``/predict``) and, with one label, reranks (``/rerank``); a masked-LM fills masks.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertzoo.errors import InputError
from bertzoo.serve.schemas import ApiError

if TYPE_CHECKING:
    from bertzoo.inference.pipeline import Pipeline
    from bertzoo.serve.batcher import ModelWorker

SERVED_TASKS = ("embed", "classify", "rerank", "fill-mask")
ROUTE_OF_TASK = {"embed": "/v1/embeddings and /embed", "classify": "/predict", "rerank": "/rerank",
                 "fill-mask": "/fill-mask"}
DEFAULT_NAME = "all-MiniLM-L6-v2"


@dataclass
class ServedModel:
    """One loaded model: the name clients use, the names it also answers to, a pipeline per task."""

    name: str
    aliases: frozenset[str]
    folder: Path
    pipelines: dict[str, Pipeline]
    worker: ModelWorker | None = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        """What ``/info`` says about the model."""
        any_pipe = next(iter(self.pipelines.values()))
        out: dict[str, Any] = {"id": self.name, "folder": str(self.folder), "tasks": sorted(self.pipelines),
                               "max_input_length": any_pipe.max_length, "compute": any_pipe.compute,
                               "head": any_pipe.head_record.full_name}
        embed = self.pipelines.get("embed")
        if embed is not None:
            out.update(dimension=embed.dimension, normalize=embed.embedding_normalize)
        clf = self.pipelines.get("classify")
        if clf is not None:
            out["labels"] = [str(v) for _, v in sorted(dict(clf.head.id2label).items())]
        return out


def split_name(value: str | None) -> tuple[str | None, str | None]:
    """``NAME=MODEL`` → ``(NAME, MODEL)``; a plain model → ``(None, MODEL)``."""
    if value is None or "=" not in value or Path(value).exists():
        return None, value
    name, _, model = value.partition("=")
    if not name or "/" in name or not model:
        raise InputError(f"--model {value!r}: write NAME=MODEL with a non-empty NAME without '/', or just MODEL")
    return name, model


def _is_default(folder: Path) -> bool:
    from bertzoo.checkpoint.default_model import default_model_dir
    from bertzoo.errors import BertzooError

    try:
        return folder.resolve() == default_model_dir().resolve()
    except BertzooError:  # no default model here: this folder is not it
        return False


def _names(given: str | None, model: str | None, folder: Path) -> tuple[str, frozenset[str]]:
    from bertzoo.checkpoint.default_model import DEFAULT_ALIASES

    if model is None or (model in DEFAULT_ALIASES and not Path(model).is_dir()):
        name, aliases = DEFAULT_NAME, set(DEFAULT_ALIASES)
    elif Path(model).is_dir():
        default = _is_default(folder)  # its folder (a package's "model/", a cache hash) names nothing
        name = DEFAULT_NAME if default else folder.name
        aliases = {model, str(folder), name, *(DEFAULT_ALIASES if default else ())}
    else:
        name, aliases = model, {model, model.rsplit("/", 1)[-1]}
    if given is not None:
        name = given
    return name, frozenset({*aliases, name})


def model_tasks(folder: Path, head: str | None) -> tuple[str, ...]:
    """The served tasks of the checkpoint in ``folder`` (or of ``head``), in :data:`SERVED_TASKS` order."""
    from bertzoo.discovery import get_registry
    from bertzoo.inference.engine import head_tasks, recorded_head

    registry = get_registry()
    record = registry.get("head", head) if head is not None else recorded_head(folder, registry)
    declared = head_tasks(record) if record is not None else ("embed",)  # a plain encoder embeds
    return tuple(t for t in SERVED_TASKS if t in declared)


def load_model(value: str | None, *, head: str | None = None, compute: str | None = None,
               device: str | None = None) -> ServedModel:
    """Load ``--model VALUE`` once for every task it serves (the tasks share the loaded weights).

    Raises:
        InputError / CheckpointError: a bad model value, or a model that serves none of the routes.
    """
    from bertzoo.checkpoint.default_model import resolve_model
    from bertzoo.inference.pipeline import Pipeline

    given, model = split_name(value)
    folder = resolve_model(model)
    name, aliases = _names(given, model, folder)
    tasks = model_tasks(folder, head)
    if not tasks:
        raise InputError(f"model {name!r} ({folder}) serves none of the tasks bertzoo serve has routes for "
                         f"({', '.join(SERVED_TASKS)}); serve an embedding, classification or masked-LM checkpoint, "
                         "or pick a head that serves one with --head")
    first = Pipeline(folder, task=tasks[0], head=head, compute=compute, device=device)
    pipelines = {tasks[0]: first}
    for task in tasks[1:]:
        if task == "rerank" and len(dict(first.head.id2label)) != 1:
            continue  # a cross-encoder has one relevance logit; a multi-label classifier only classifies
        twin = copy.copy(first)  # same weights and forward lock, another task contract
        twin.task, twin.options = task, dataclasses.replace(first.options, task=task)
        # its own tokenizer: truncation is state on the Rust tokenizer, and embedding tokenizes off the worker
        twin.tokenizer = type(first.tokenizer).from_folder(first.tokenizer_folder, max_length=first.max_length)
        pipelines[task] = twin
    embedder = pipelines.get("embed")
    if embedder is not None:  # settle the tokenizer's state and warm the kernels before the first request
        embedder.embed_encoded(embedder.encode_for_embedding(["warm up"], "silent"), progress=False)
    return ServedModel(name, aliases, folder, pipelines)


class ModelTable:
    """The served models, in ``--model`` order (the first serving a task is its default)."""

    def __init__(self, models: list[ServedModel]) -> None:
        seen: dict[str, str] = {}
        for m in models:
            if m.name in seen:
                raise InputError(f"two --model options are both named {m.name!r}; name them: --model NAME=MODEL")
            seen[m.name] = str(m.folder)
        self.models = models

    def pick(self, task: str, requested: str | None) -> ServedModel:
        """The model for a ``task`` request naming ``requested`` (None = the first serving it). With one
        model serving the task any name is accepted, as OpenAI clients send their own model names.

        Raises:
            ApiError: 404, no served model fits, naming those that serve the task.
        """
        serving = [m for m in self.models if task in m.pipelines]
        names = ", ".join(repr(m.name) for m in serving) or "none"
        if not serving:
            raise ApiError(404, f"no served model does {task!r} ({ROUTE_OF_TASK[task]}); start bertzoo serve with "
                                "--model set to a checkpoint for it", code="model_not_found")
        if requested is None:
            return serving[0]
        named = next((m for m in self.models if requested in m.aliases), None)
        if named is not None and task in named.pipelines:
            return named
        if named is None and len(serving) == 1:
            return serving[0]
        why = f"does not serve {task!r}" if named is not None else "is not served here"
        raise ApiError(404, f"model {requested!r} {why}; models that do: {names}", code="model_not_found")


__all__ = ["DEFAULT_NAME", "SERVED_TASKS", "ModelTable", "ServedModel", "load_model", "model_tasks", "split_name"]
