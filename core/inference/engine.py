"""The machinery every main-job task shares: load a checkpoint for a task, batch texts, run the trunk.

:class:`Engine` loads the model once with the head that serves the task (resolved through the
registry: a head's registration names the tasks it serves), applies the compute precision (a
registered component), and turns token ids into :class:`~bertzoo.interfaces.TaskStates` batches:
packed (real tokens only, ``[T, H]`` with ``cu_seqlens``) when the trunk and the head allow it,
else padded. The task modules (:mod:`bertzoo.inference.embed`, ``classify``, ...) call the head's
task contract on those states; nothing here reads a head's other attributes.

Shape legend: N texts, B batch, S longest in batch, T real tokens in batch, H hidden.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bertzoo.discovery import registry_or_default
from bertzoo.errors import BertzooError, CheckpointError, InputError
from bertzoo.family import DEFAULT_FAMILY, head_for_family
from bertzoo.inference.batching import DEFAULT_BATCH_TOKENS, Batch, plan_batches, show_progress, torch_threads
from bertzoo.inference.precision import apply_precision, precision_name
from bertzoo.inference.truncation import TruncationWarning
from bertzoo.interfaces import TASK_DEFAULT_HEADS, TaskStates
from bertzoo.registry import ComponentRecord, Registry

if TYPE_CHECKING:
    from torch import Tensor

    from bertzoo.inference.tokenizer import TokenIds, Tokenizer

# hf_architecture a head registers to be chosen for a sentence-transformers folder
_SENTENCE_TRANSFORMERS = "SentenceTransformer"


@dataclass(frozen=True)
class PipelineOptions:
    """What a loaded model depends on (the cache key of the module-level functions)."""

    task: str
    model: str
    compute: str = "bertzoo:float32"
    compile: bool = False
    device: str | None = None
    attention: str | None = None
    max_length: int | None = None
    head: str | None = None
    allow_random_head: bool = False


# What to pass for each main-job task when the model given cannot serve it (error messages).
TASK_MODEL_KINDS: dict[str, str] = {
    "classify": "a sequence-classification checkpoint (a model fine-tuned to label texts)",
    "rerank": "a cross-encoder (e.g. cross-encoder/ms-marco-MiniLM-L6-v2)",
    "fill-mask": "a masked-language model (e.g. google-bert/bert-base-uncased)",
    "token-classify": "a token-classification checkpoint (e.g. dslim/bert-base-NER)",
    "answer": "a question-answering checkpoint (e.g. deepset/bert-base-cased-squad2)",
}


class RandomHeadWarning(UserWarning):
    """A task head runs with weights initialised at random (``allow_random_head=True``): its answers are noise."""


def head_tasks(record: ComponentRecord) -> tuple[str, ...]:
    """The main-job tasks a head's registration says it serves (``task=`` metadata, str or tuple)."""
    task = record.metadata.get("task")
    if task is None:
        return ()
    return (task,) if isinstance(task, str) else tuple(task)


def recorded_head(folder: Path, registry: Registry) -> ComponentRecord | None:
    """The head a checkpoint folder records: a bertzoo save's head, a sentence-transformers folder's
    embedding head, or the head registered for ``config.json``'s ``architectures[0]``."""
    from bertzoo.checkpoint import read_sentence_transformers_info

    st_info = read_sentence_transformers_info(folder)
    heads = registry.records("head")
    if st_info is not None:
        return next((r for r in heads if r.metadata.get("hf_architecture") == _SENTENCE_TRANSFORMERS), None)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    saved = ((config.get("bertzoo") or {}).get("components") or {}).get("head") if isinstance(config, dict) else None
    if isinstance(saved, dict) and saved.get("name") and registry.is_component("head", str(saved["name"])):
        return registry.get("head", str(saved["name"]))
    architectures = config.get("architectures") or [] if isinstance(config, dict) else []
    if not architectures:
        return None
    return next((r for r in heads if r.metadata.get("hf_architecture") == str(architectures[0])), None)


def resolve_task_head(task: str, head: str | None, folder: Path, registry: Registry) -> ComponentRecord:
    """The head that serves ``task``: ``head`` if given (it must declare the task), else the head the
    checkpoint records when it serves the task, else the task's default head.

    Raises:
        InputError: a head that does not serve the task, or a task no head serves.
    """
    record = _task_head(task, head, folder, registry)
    # a family-independent head name means the folder's family's variant (roberta.sequence-classification)
    model_type = _model_type(folder)
    family_head = head_for_family(record.full_name, model_type, registry)
    return record if family_head == record.full_name else registry.get("head", family_head)


def _model_type(folder: Path) -> str:
    """``config.json``'s ``model_type`` of a folder (of its transformer module for sentence-transformers)."""
    from bertzoo.checkpoint import read_sentence_transformers_info

    st_info = read_sentence_transformers_info(folder)
    model_dir = st_info.transformer_path if st_info is not None else folder
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return DEFAULT_FAMILY
    return str(config.get("model_type") or DEFAULT_FAMILY) if isinstance(config, dict) else DEFAULT_FAMILY


def _task_head(task: str, head: str | None, folder: Path, registry: Registry) -> ComponentRecord:
    serving = [r for r in registry.records("head") if task in head_tasks(r)]
    if head is not None:
        record = registry.get("head", head)
        if task not in head_tasks(record):
            names = ", ".join(r.full_name for r in serving) or "none installed"
            raise InputError(
                f"head {record.full_name!r} does not serve the {task!r} task (it declares "
                f"{', '.join(head_tasks(record)) or 'no task'}); heads that do: {names}"
            )
        return record
    recorded = recorded_head(folder, registry)
    if recorded is not None and task in head_tasks(recorded):
        return recorded
    default = TASK_DEFAULT_HEADS.get(task)
    if default is not None and (registry.is_component("head", default) or registry.disabled_plugins):
        return registry.get("head", default)  # missing with a plugin disabled: the miss names BERTZOO_DISABLE_PLUGINS
    if len(serving) == 1:
        return serving[0]
    if not serving:
        raise InputError(f"no installed head serves the task {task!r}; install a plugin whose head registers "
                         f"task={task!r}, or use one of {', '.join(TASK_DEFAULT_HEADS)}")
    raise InputError(f"several heads serve the task {task!r} ({', '.join(r.full_name for r in serving)}); "
                     "name one with head=")


def model_kind(task: str) -> str:
    """The kind of checkpoint that serves ``task``, for error messages."""
    return TASK_MODEL_KINDS.get(task, f"a checkpoint fine-tuned for {task!r}")


def refuse_embedding_model(task: str, head: str | None, folder: Path, registry: Registry) -> None:
    """Refuse, before anything is loaded, a non-embedding task on a checkpoint whose recorded head only
    embeds (a sentence-transformers folder such as the default model): it holds no weights for any other
    task's head, so that head would be random.

    Raises:
        InputError: naming the kind of model to pass instead.
    """
    if head is not None or task == "embed":
        return
    recorded = recorded_head(folder, registry)
    if recorded is None or head_tasks(recorded) != ("embed",):
        return
    raise InputError(
        f"{str(folder)!r} is a sentence-embedding model, with no {task!r} head (it would be random); pass "
        f"{model_kind(task)} as the model (model=PATH, or --model PATH on the command line), or "
        "allow_random_head=True (--allow-random-head) to run a random head anyway"
    )


def _fresh_head_keys(model: Any, task: str) -> list[str]:
    """Keys of ``model`` initialised rather than loaded, the embedding's unused pooler aside."""
    report = getattr(model, "load_report", None)
    if report is None:
        return []
    return [k for k in report.newly_initialized if not (k.startswith(("bert.pooler.", "pooler.")) and task == "embed")]


def _check_head_loaded(fresh: list[str], record: ComponentRecord, task: str, folder: Path, allow: bool) -> None:
    """A task head whose weights the checkpoint lacks would give random answers: refuse it, or with
    ``allow`` say loudly which keys are random."""
    if not fresh:
        return
    shown = ", ".join(fresh[:6]) + (f" and {len(fresh) - 6} more" if len(fresh) > 6 else "")
    if allow:
        warnings.warn(
            f"RANDOM HEAD: {shown} of the {record.full_name!r} head were initialised at random, not loaded from "
            f"{str(folder)!r}; its {task!r} results are noise (allow_random_head=True)", RandomHeadWarning,
            stacklevel=4)
        return
    raise CheckpointError(
        f"{str(folder)!r} has no weights for {shown}, which the {record.full_name!r} head needs for the "
        f"{task!r} task (they would be random); pass {model_kind(task)}, or name the head it was saved with "
        "(head=...), or allow_random_head=True (--allow-random-head) to run it anyway"
    )


class _HeldRecords(logging.Filter):
    """Holds back this thread's records of a logger (the load report); the caller replays or drops them."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.held: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return True
        self.held.append(record)
        return False


@contextlib.contextmanager
def held_load_report() -> Iterator[_HeldRecords]:
    """The load report ``from_pretrained`` logs, held back so a refused head shows its one-line error
    alone; the caller replays ``held.held`` when the load is accepted."""
    logger = logging.getLogger("bertzoo.pretrained")
    held = _HeldRecords()
    logger.addFilter(held)
    try:
        yield held
    finally:
        logger.removeFilter(held)


class Engine:
    """A model, its tokenizer and the head serving one task, loaded once and reusable across calls.

    Args:
        model: a local folder or a hub id; None = the default model (all-MiniLM-L6-v2).
        task: a main-job task (``embed``, ``classify``, ``rerank``, ``fill-mask``,
            ``token-classify``, ``answer``, or one a plugin's heads serve).
        head: the head to use; None = the one the checkpoint records if it serves the task, else
            the task's default head.
        compute: a registered compute precision (``float32``, ``bfloat16``, ``int8``, ...);
            ``dtype=`` and ``quantize=`` are the older spellings of the same choice.
        compile: wrap the trunk in ``torch.compile``.
        device: ``"cpu"``, ``"cuda"``, ...; default CPU.
        attention: an attention name; None = ``auto``.
        max_length: truncation length; default the model's.
        allow_random_head: run a task head whose weights the checkpoint lacks (initialised at
            random), with a :class:`RandomHeadWarning` naming them; by default that is refused,
            and a non-embedding task on a sentence-embedding checkpoint is refused before loading.

    Raises:
        CheckpointError: the model cannot be found or read, or lacks the task head's weights.
        InputError: an unknown task, a head that does not serve it, a sentence-embedding
            checkpoint for another task, or bad switches.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        task: str = "embed",
        head: str | None = None,
        compute: str | None = None,
        dtype: Any = None,
        quantize: str | None = None,
        compile: bool = False,
        device: str | None = None,
        attention: str | None = None,
        max_length: int | None = None,
        registry: Registry | None = None,
        allow_random_head: bool = False,
    ) -> None:
        import torch

        from bertzoo.checkpoint import read_sentence_transformers_info
        from bertzoo.checkpoint.default_model import resolve_model
        from bertzoo.inference.tokenizer import Tokenizer
        from bertzoo.pretrained import from_pretrained

        reg = registry_or_default(registry)
        self.task = task
        self.folder = resolve_model(model)
        self.compute = precision_name(compute, dtype=dtype, quantize=quantize, registry=reg)
        self.head_record = resolve_task_head(task, head, self.folder, reg)
        if not allow_random_head:
            refuse_embedding_model(task, head, self.folder, reg)
        self.options = PipelineOptions(task, str(self.folder), self.compute, bool(compile), device, attention,
                                       max_length, self.head_record.full_name, bool(allow_random_head))
        st_info = read_sentence_transformers_info(self.folder)
        self.tokenizer_folder = st_info.transformer_path if st_info is not None else self.folder
        if max_length is None and st_info is not None and st_info.max_seq_length and not (
                self.tokenizer_folder / "sentence_bert_config.json").is_file():
            max_length = int(st_info.max_seq_length)  # sentence_bert_config.json next to modules.json only
        self.tokenizer: Tokenizer = Tokenizer.from_folder(self.tokenizer_folder, max_length=max_length)

        with held_load_report() as report:
            self.model: Any = from_pretrained(self.folder, head=self.head_record.full_name, attention=attention,
                                              device=device, registry=reg)
        _check_head_loaded(_fresh_head_keys(self.model, task), self.head_record, task, self.folder,
                           allow_random_head)
        for record in report.held:  # accepted: the load report is shown (a refusal's error says it all)
            logging.getLogger(record.name).handle(record)
        self.model.eval()
        self.head: Any = self.model  # the task contract's owner
        self.bert: Any = self.model.bert
        self.bert.validate_inputs = False  # ids come from our own tokenizer; skip the host sync per batch
        self.packed = bool(getattr(self.bert, "can_pack", lambda: False)()) and bool(
            getattr(type(self.model), "packed_tasks", True))
        apply_precision(self.model, self.compute, device=device, calibrate=self._calibration_run, registry=reg)
        # a precision may change the dtype (and so what the packed attention serves): ask again
        self.packed = self.packed and bool(self.bert.can_pack())
        self.device = torch.device(device) if device is not None else self.bert.device
        self._trunk: Any = torch.compile(self.bert, dynamic=True) if compile else self.bert
        self._packed_trunk: Any = self.bert.forward_packed if self.packed else None
        if compile and self.packed:
            self._packed_trunk = torch.compile(self.bert.forward_packed, dynamic=True)
        self._lock = threading.Lock()  # one forward at a time per pipeline (set_num_threads is global)

    def _calibration_run(self, texts: Sequence[str]) -> None:
        """The float trunk on ``texts`` (for precisions that need activation statistics)."""
        import torch

        ids = self.tokenizer.encode_ids(list(texts)).ids
        with torch.inference_mode():
            if self.packed:
                flat, cu_seqlens = self.tokenizer.pack(ids)
                self.bert.forward_packed(flat, cu_seqlens)
            else:
                input_ids, attention_mask, _ = self.tokenizer.pad(ids)
                self.bert(input_ids=input_ids, attention_mask=attention_mask)

    def __repr__(self) -> str:
        o = self.options
        extra = f", device={o.device!r}" if o.device else ""
        return (f"{type(self).__name__}({str(self.folder)!r}, task={self.task!r}, head={o.head!r}, "
                f"compute={o.compute!r}{extra})")

    @property
    def max_length(self) -> int:
        return self.tokenizer.max_length

    def require(self, task: str) -> None:
        if self.task != task:
            raise InputError(
                f"this Pipeline was loaded for {self.task!r}, not {task!r}; create Pipeline(model, task={task!r})"
            )

    def contract(self, method: str) -> Any:
        """The head's task-contract method ``method``, or a clear error naming the head."""
        fn = getattr(self.head, method, None)
        if not callable(fn):
            raise BertzooError(
                f"head {self.head_record.full_name!r} registers task {self.task!r} but has no {method}() method; "
                "implement the task contract (see bertzoo.interfaces) in the plugin"
            )
        return fn

    # -- tokens → batches → states -----------------------------------------------------------
    def tokenize(self, texts: Sequence[Any]) -> TokenIds:
        """Token ids cut at :attr:`max_length`; one :class:`TruncationWarning` says how many were cut."""
        enc = self.tokenizer.encode_ids(texts)
        cut = int(enc.truncated.sum())
        if cut:
            warnings.warn(f"{cut} of {len(texts)} texts truncated at {self.max_length} tokens",
                          TruncationWarning, stacklevel=4)
        return enc

    def batches(self, enc: TokenIds, batch_tokens: int | None, progress: bool | None, *,
                packed: bool | None = None) -> Iterator[Batch]:
        """The batches of ``enc`` (longest first), packed or padded, on the pipeline's device."""
        import torch

        packed = self.packed if packed is None else packed and self.packed
        budget = DEFAULT_BATCH_TOKENS if batch_tokens is None else int(batch_tokens)
        total = int(enc.lengths.sum())
        # counted in real tokens, not texts: batches run longest first, so a count of texts would
        # give an ETA far too long at the start (the same work per token holds across the job)
        bar = None
        if show_progress(progress, total):
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="tok", unit_scale=True, desc=self.task, file=sys.stderr,
                       dynamic_ncols=True)
        try:
            for idx in plan_batches(enc.lengths, budget, padded=not packed):
                ids = [enc.ids[i] for i in idx]
                types = [enc.type_ids[i] for i in idx] if enc.type_ids is not None else None
                if packed:
                    flat, cu_seqlens = self.tokenizer.pack(ids)
                    inputs = {"input_ids": flat, "cu_seqlens": cu_seqlens}
                    if types is not None:
                        inputs["token_type_ids"] = self.tokenizer.pack(types)[0]
                else:
                    input_ids, attention_mask, token_type_ids = self.tokenizer.pad(ids, types)
                    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
                    if types is not None:
                        inputs["token_type_ids"] = token_type_ids
                if self.device.type != "cpu":
                    inputs = {k: v.to(self.device, non_blocking=True) for k, v in inputs.items()}
                yield Batch(torch.as_tensor(idx, device=self.device), inputs, int(enc.lengths[idx[0]]))
                if bar is not None:
                    bar.update(int(enc.lengths[idx].sum()))
        finally:
            if bar is not None:
                bar.close()

    def states(self, batch: Batch) -> TaskStates:
        """Run the trunk on ``batch``: its last hidden states as the task contracts take them."""
        inputs = batch.inputs
        if batch.packed:
            hidden = self._packed_trunk(**inputs, max_seqlen=batch.longest)
            return TaskStates(hidden, inputs["input_ids"], cu_seqlens=inputs["cu_seqlens"],
                              token_type_ids=inputs.get("token_type_ids"), max_seqlen=batch.longest)
        hidden = self._trunk(**inputs, return_dict=True).last_hidden_state
        return TaskStates(hidden, inputs["input_ids"], attention_mask=inputs["attention_mask"],
                          token_type_ids=inputs.get("token_type_ids"), max_seqlen=batch.longest)

    @contextlib.contextmanager
    def running(self, threads: int | None) -> Iterator[None]:
        """One forward at a time, ``threads`` torch threads, inference mode."""
        import torch

        with self._lock, torch_threads(threads), torch.inference_mode():
            yield

    def expect_shape(self, value: Tensor, shape: tuple[int | None, ...], what: str) -> Tensor:
        """``value`` if it has ``shape`` (None = any size), else a clear error naming the head."""
        from torch import Tensor

        ok = isinstance(value, Tensor) and value.dim() == len(shape) and all(
            want is None or got == want for got, want in zip(value.shape, shape, strict=False))
        if not ok:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise BertzooError(
                f"head {self.head_record.full_name!r} returned {what} of shape {got}; the {self.task!r} task "
                f"contract needs {want}; fix the head's contract method"
            )
        return value


__all__ = ["TASK_MODEL_KINDS", "Engine", "PipelineOptions", "RandomHeadWarning", "head_tasks", "held_load_report",
           "model_kind", "recorded_head", "refuse_embedding_model", "resolve_task_head"]
