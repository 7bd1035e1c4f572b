"""The inference runner: embed, classify and fill masks in text with a pretrained checkpoint.

``bertzoo.embed(texts)``, ``bertzoo.classify(texts, model=...)`` and ``bertzoo.fill_mask(texts,
model=...)`` load the model once (cached per model and options) through a :class:`Pipeline`, which
you can also hold yourself::

    pipe = bertzoo.Pipeline("sentence-transformers/all-MiniLM-L6-v2", dtype="bfloat16")
    vectors = pipe.embed(texts)            # (N, 384) float32 numpy

How a call runs:

1. Tokenize every text at once (Rust, parallel), truncating at the model's maximum length; one
   warning line says how many texts were cut.
2. Sort by token count, longest first, and cut the sorted list into batches whose cost stays
   under ``batch_tokens``: the padded area ``batch × longest`` on the padded path, the real
   token count on the packed path.
3. Run each batch: packed (real tokens only, ``[T, H]`` with ``cu_seqlens``) when the trunk
   offers it, else padded with an attention mask. Results go straight to their input position,
   so the output order is the input order.

Switches: ``dtype`` (``float32`` / ``bfloat16``: the encoder's matmuls in bf16, the rest in fp32),
``quantize="int8"`` (dynamic int8 Linear layers, see :mod:`bertzoo.quantize`), ``compile=True``
(``torch.compile`` of the trunk), ``threads`` (torch intra-op threads for the call), ``device``.
A tqdm progress bar goes to stderr on long jobs when stderr is a terminal (``progress=True`` /
``False`` forces it).

Shape legend: N texts, B batch, S longest in batch, T real tokens in batch, H hidden, V vocabulary.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bertzoo.errors import InputError

if TYPE_CHECKING:
    from torch import Tensor

    from bertzoo.tokenizer import FittedIds, TokenIds, Tokenizer

logger = logging.getLogger(__name__)

Task = Literal["embed", "classify", "fill-mask"]
# the head each task loads the checkpoint into
TASK_HEADS: dict[str, str] = {
    "embed": "sentence-embedding",
    "classify": "sequence-classification",
    "fill-mask": "masked-lm",
}
# Real tokens per batch. Measured on the 2-core CPU (benchmarks/embed.py): throughput is flat
# from ~2k to ~8k tokens and drops beyond (activations leave the L2 cache); memory stays small.
DEFAULT_BATCH_TOKENS = 4096
# a job this large (real tokens) gets a progress bar when stderr is a terminal
PROGRESS_MIN_TOKENS = 50_000
_CACHE_SIZE = 4  # pipelines kept by the module-level functions


class TruncationWarning(UserWarning):
    """Some texts were longer than the model's maximum length and were cut."""


# What embed does with a text longer than the model's maximum length:
# error = stop (InputError naming the first such text and its token count); warn = cut it and say
# how many were cut in one warning; silent = cut it quietly; chunk = split it into windows and
# average their embeddings (see Pipeline.embed_encoded).
TRUNCATE_POLICIES = ("error", "warn", "silent", "chunk")


def truncation_summary(truncated: int, total: int, max_length: int, policy: str) -> str:
    """One line: ``"312 of 1,000,000 texts truncated at 256 tokens"`` (windows for ``chunk``)."""
    if policy == "chunk":
        return f"{truncated:,} of {total:,} texts longer than {max_length} tokens embedded as windows"
    return f"{truncated:,} of {total:,} texts truncated at {max_length} tokens"


# -- batching ---------------------------------------------------------------------------------------


def plan_batches(lengths: np.ndarray, batch_tokens: int, *, padded: bool) -> list[np.ndarray]:
    """Indices of texts per batch: longest first, each batch's cost at most ``batch_tokens``.

    Args:
        lengths: ``(N,)`` token counts.
        batch_tokens: budget per batch; a single text longer than it still gets its own batch.
        padded: cost = ``batch × longest`` (padded execution) instead of the sum of lengths (packed).

    Returns:
        Index arrays into ``lengths`` that together cover every text once.
    """
    if batch_tokens <= 0:
        raise InputError(f"batch_tokens={batch_tokens} must be positive; try {DEFAULT_BATCH_TOKENS}")
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    start, n = 0, len(order)
    if padded:
        while start < n:
            size = max(1, batch_tokens // max(1, int(lengths[order[start]])))  # the first is the longest
            batches.append(order[start:start + size])
            start += size
        return batches
    cumulative = np.cumsum(lengths[order])
    while start < n:
        before = cumulative[start - 1] if start else 0
        end = int(np.searchsorted(cumulative, before + batch_tokens, side="right"))
        end = max(end, start + 1)
        batches.append(order[start:end])
        start = end
    return batches


def _as_text_list(texts: Any, what: str) -> tuple[list[Any], bool]:
    """``texts`` as a list, and whether a single item was given (result unwrapped)."""
    if isinstance(texts, (str, tuple, Mapping)):
        return [texts], True
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    if not isinstance(texts, Iterable):
        raise InputError(f"{what} takes a string or a list of strings, got {type(texts).__name__}")
    return list(texts), False


def _check_strings(texts: Sequence[Any], what: str, *, pairs: bool = False) -> list[Any]:
    out: list[Any] = []
    for i, t in enumerate(texts):
        if isinstance(t, str):
            out.append(t)
        elif pairs and isinstance(t, Mapping) and isinstance(t.get("text"), str):
            pair = t.get("text_pair")
            out.append(t["text"] if pair is None else (t["text"], pair))
        elif pairs and isinstance(t, (tuple, list)) and len(t) == 2 and all(isinstance(s, str) for s in t):
            out.append((t[0], t[1]))
        else:
            kinds = "a string, a (text, text_pair) tuple or a {'text', 'text_pair'} dict" if pairs else "a string"
            raise InputError(f"{what}: item {i} is {type(t).__name__} {t!r:.60}; each item must be {kinds}")
    return out


def _show_progress(progress: bool | None, total_tokens: int) -> bool:
    if progress is not None:
        return bool(progress)
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty()) and total_tokens >= PROGRESS_MIN_TOKENS


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    import torch

    if n is None:
        yield
        return
    if n <= 0:
        raise InputError(f"threads={n} must be a positive number of CPU threads")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pool_packed(hidden: Tensor, cu_seqlens: Tensor, mode: str) -> Tensor:
    """sentence-transformers' pooling on packed ``(T, H)`` states → ``(B, H)`` float32.

    Same arithmetic as :func:`bertzoo.heads.sentence_embedding.pool` (sums in fp32, count floor
    1e-9), without padding: each sequence is the run ``cu_seqlens[i]:cu_seqlens[i + 1]``.
    """
    import torch

    cu = cu_seqlens.to(device=hidden.device, dtype=torch.long)
    lengths = cu.diff()  # (B,)
    if mode == "cls":
        return hidden[cu[:-1]].float()
    if mode == "max":
        return torch.segment_reduce(hidden.float(), "max", lengths=lengths, axis=0)
    segment = torch.repeat_interleave(torch.arange(len(lengths), device=hidden.device), lengths,
                                      output_size=hidden.shape[0])  # (T,)
    total = hidden.new_zeros((len(lengths), hidden.shape[1]), dtype=torch.float32).index_add_(0, segment, hidden.float())
    count = lengths.to(torch.float32).clamp(min=1e-9)[:, None]  # (B, 1)
    if mode == "mean":
        return total / count
    if mode == "mean_sqrt_len_tokens":
        return total / count.sqrt()
    raise InputError(f"pooling mode {mode!r} is not supported by the runner; use mean, cls, max or mean_sqrt_len_tokens")


# -- the pipeline ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineOptions:
    """What a loaded model depends on (the cache key of the module-level functions)."""

    task: str
    model: str
    dtype: str = "float32"
    quantize: str | None = None
    compile: bool = False
    device: str | None = None
    attention: str | None = None
    max_length: int | None = None


@dataclass
class Batch:
    """One batch: the input positions of its texts and the trunk's inputs.

    Attributes:
        index: ``(B,)`` positions in the input list.
        inputs: packed ``input_ids`` ``(T,)`` + ``cu_seqlens`` ``(B + 1,)``, or padded
            ``input_ids`` / ``attention_mask`` ``(B, S)``; ``token_type_ids`` for pairs.
        longest: tokens in the batch's longest text.
    """

    index: Tensor
    inputs: dict[str, Tensor]
    longest: int


_DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "float": "float32",
                "bfloat16": "bfloat16", "bf16": "bfloat16"}


class Pipeline:
    """A model and its tokenizer loaded once for one task, reusable across calls.

    Args:
        model: a local folder or a hub id; None = the default model (all-MiniLM-L6-v2, see
            :mod:`bertzoo.default_model`).
        task: ``"embed"`` (sentence-embedding head; sentence-transformers folders keep their
            pooling and normalisation, plain folders get mean pooling), ``"classify"``
            (sequence-classification) or ``"fill-mask"`` (masked-lm).
        dtype: ``"float32"`` or ``"bfloat16"`` (the encoder's Linear layers multiply in bf16;
            residual stream, LayerNorm, attention and pooling stay float32).
        quantize: None or ``"int8"`` (dynamic int8 Linear layers, CPU only).
        compile: wrap the trunk in ``torch.compile`` (slow first call; helps long jobs).
        device: ``"cpu"``, ``"cuda"``, ...; default CPU.
        attention: an attention name; None = ``auto``.
        max_length: truncation length; default the model's (see ``Tokenizer.max_length_resolution``).

    Raises:
        CheckpointError: the model cannot be found or read.
        InputError: an unknown task, dtype or quantize value.
    """

    packed: bool

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        task: Task = "embed",
        dtype: str = "float32",
        quantize: str | None = None,
        compile: bool = False,
        device: str | None = None,
        attention: str | None = None,
        max_length: int | None = None,
    ) -> None:
        import torch

        from bertzoo.checkpoint import from_pretrained, read_sentence_transformers_info
        from bertzoo.default_model import resolve_model
        from bertzoo.tokenizer import Tokenizer

        if task not in TASK_HEADS:
            raise InputError(f"task {task!r} is unknown; use one of {', '.join(TASK_HEADS)}")
        dtype_name = _DTYPE_NAMES.get(str(dtype).replace("torch.", "").lower())
        if dtype_name is None:
            raise InputError(f"dtype {dtype!r} is not supported by the runner; use 'float32' or 'bfloat16'")
        if quantize not in (None, "int8"):
            raise InputError(f"quantize={quantize!r} is unknown; use None or 'int8'")
        if quantize == "int8" and dtype_name != "float32":
            raise InputError("quantize='int8' runs the remaining layers in float32; drop dtype='bfloat16' or quantize")
        self.task = task
        self.folder = resolve_model(model)
        self.options = PipelineOptions(task, str(self.folder), dtype_name, quantize, bool(compile), device,
                                       attention, max_length)
        st_info = read_sentence_transformers_info(self.folder)
        self.tokenizer_folder = st_info.transformer_path if st_info is not None else self.folder
        if max_length is None and st_info is not None and st_info.max_seq_length and not (
                self.tokenizer_folder / "sentence_bert_config.json").is_file():
            max_length = int(st_info.max_seq_length)  # sentence_bert_config.json next to modules.json only
        self.tokenizer: Tokenizer = Tokenizer.from_folder(self.tokenizer_folder, max_length=max_length)

        head = TASK_HEADS[task]
        self.model: Any = from_pretrained(self.folder, head=head, attention=attention, device=device)
        self.model.eval()
        self.bert: Any = self.model.bert
        self.bert.validate_inputs = False  # ids come from our own tokenizer; skip the host sync per batch
        choice = getattr(self.bert, "attention_choice", None)
        self.packed = hasattr(self.bert, "forward_packed") and getattr(choice, "packed", None) is not None
        if quantize == "int8":
            from bertzoo.quantize import quantize_int8

            quantize_int8(self.model, calibrate=self._calibration_run)
        elif dtype_name == "bfloat16":
            from bertzoo.quantize import cast_linear_bf16

            cast_linear_bf16(self.model)  # bf16 matmuls, float32 residual stream (see bertzoo.quantize)
        self.device = torch.device(device) if device is not None else self.bert.device
        self._trunk: Any = torch.compile(self.bert, dynamic=True) if compile else self.bert
        self._packed_trunk: Any = self.bert.forward_packed if self.packed else None
        if compile and self.packed:
            self._packed_trunk = torch.compile(self.bert.forward_packed, dynamic=True)
        self._lock = threading.Lock()  # one forward at a time per pipeline (set_num_threads is global)

    def _calibration_run(self) -> None:
        """The float trunk on :data:`bertzoo.quantize.CALIBRATION_TEXTS` (real tokens only when packed)."""
        import torch

        from bertzoo.quantize import CALIBRATION_TEXTS

        ids = self.tokenizer.encode_ids(list(CALIBRATION_TEXTS)).ids
        with torch.inference_mode():
            if self.packed:
                flat, cu_seqlens = self.tokenizer.pack(ids)
                self.bert.forward_packed(flat, cu_seqlens)
            else:
                input_ids, attention_mask, _ = self.tokenizer.pad(ids)
                self.bert(input_ids=input_ids, attention_mask=attention_mask)

    def __repr__(self) -> str:
        o = self.options
        extra = "".join(f", {k}={v!r}" for k, v in (("quantize", o.quantize), ("device", o.device)) if v)
        return f"Pipeline({str(self.folder)!r}, task={self.task!r}, dtype={o.dtype!r}{extra})"

    @property
    def dimension(self) -> int:
        """Width of the vectors :meth:`embed` returns."""
        return int(self.bert.spec.hidden_size)

    @property
    def max_length(self) -> int:
        return self.tokenizer.max_length

    # -- shared machinery -------------------------------------------------------------------------
    def _tokenize(self, texts: Sequence[Any]) -> TokenIds:
        enc = self.tokenizer.encode_ids(texts)
        cut = int(enc.truncated.sum())
        if cut:
            warnings.warn(
                f"{cut} of {len(texts)} texts truncated at {self.max_length} tokens",
                TruncationWarning, stacklevel=4,
            )
        return enc

    def _batches(self, enc: TokenIds, batch_tokens: int | None, progress: bool | None, *, packed: bool,
                 ) -> Iterator[Batch]:
        """Yield the batches of ``enc`` (longest first), packed or padded, on the pipeline's device."""
        import torch

        budget = DEFAULT_BATCH_TOKENS if batch_tokens is None else int(batch_tokens)
        batches = plan_batches(enc.lengths, budget, padded=not packed)
        show = _show_progress(progress, int(enc.lengths.sum()))
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(enc), unit="text", desc=self.task, file=sys.stderr, dynamic_ncols=True)
        try:
            for idx in batches:
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
                    bar.update(len(idx))
        finally:
            if bar is not None:
                bar.close()

    def _hidden(self, batch: Batch) -> Tensor:
        """Last hidden states: ``(T, H)`` packed, or ``(B, S, H)`` padded."""
        if "cu_seqlens" in batch.inputs:
            return self._packed_trunk(**batch.inputs, max_seqlen=batch.longest)  # type: ignore[no-any-return]
        return self._trunk(**batch.inputs, return_dict=True).last_hidden_state  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def _running(self, threads: int | None) -> Iterator[None]:
        import torch

        with self._lock, _threads(threads), torch.inference_mode():
            yield

    def _require(self, task: str) -> None:
        if self.task != task:
            raise InputError(
                f"this Pipeline was loaded for {self.task!r}, not {task!r}; create Pipeline(model, task={task!r})"
            )

    # -- embed -----------------------------------------------------------------------------------
    def encode_for_embedding(self, texts: Sequence[str], truncate: str = "warn", *, first_index: int = 0,
                             ) -> FittedIds:
        """Tokenize whole texts and apply the truncation policy (see :data:`TRUNCATE_POLICIES`).

        Args:
            texts: N strings.
            truncate: ``"error"``, ``"warn"`` (one :class:`TruncationWarning`), ``"silent"`` or ``"chunk"``.
            first_index: index of ``texts[0]`` in a longer stream, for the ``error`` message.

        Raises:
            InputError: ``truncate="error"`` and a text is longer than :attr:`max_length`, or a bad policy.
        """
        if truncate not in TRUNCATE_POLICIES:
            raise InputError(f"truncate={truncate!r} is unknown; use one of {', '.join(TRUNCATE_POLICIES)}")
        fitted = self.tokenizer.encode_fitted(texts, windows=truncate == "chunk")
        long = np.flatnonzero(fitted.tokens > self.max_length)
        if truncate == "error" and len(long):
            i = int(long[0])
            raise InputError(
                f"text {first_index + i} has {int(fitted.tokens[i])} tokens, more than the maximum length "
                f"{self.max_length} of {str(self.folder)!r} (truncate='error'); shorten it, or choose "
                "truncate='warn', 'silent' or 'chunk'"
            )
        if truncate == "warn" and len(long):
            warnings.warn(truncation_summary(len(long), len(texts), self.max_length, truncate), TruncationWarning,
                          stacklevel=4)
        return fitted

    def embed_encoded(
        self,
        fitted: FittedIds,
        *,
        batch_tokens: int | None = None,
        normalize: bool | None = None,
        progress: bool | None = None,
        threads: int | None = None,
    ) -> Tensor:
        """Sentence vectors of texts encoded by :meth:`encode_for_embedding`: ``(N, H)`` float32 on the device.

        A text split into windows gets the mean of its windows' pooled vectors, weighted by each
        window's token count (for mean pooling this is the mean over all the windows' tokens), then
        L2-normalised when ``normalize`` is on.
        """
        import torch
        import torch.nn.functional as F

        from bertzoo.heads.sentence_embedding import pool

        self._require("embed")
        if normalize is None:
            normalize = bool(self.model.normalize)
        mode = str(self.model.pooling)
        seqs, windowed = fitted.sequences, fitted.owner is not None
        out = torch.empty((len(seqs), self.dimension), dtype=torch.float32, device=self.device)
        if len(seqs):
            with self._running(threads):
                for batch in self._batches(seqs, batch_tokens, progress, packed=self.packed):
                    hidden = self._hidden(batch)
                    if hidden.dim() == 2:  # packed (T, H)
                        vectors = pool_packed(hidden, batch.inputs["cu_seqlens"], mode)  # (B, H) fp32
                    else:
                        vectors = pool(hidden, batch.inputs["attention_mask"], mode).float()  # (B, H)
                    if normalize and not windowed:
                        vectors = F.normalize(vectors, p=2, dim=-1)
                    out[batch.index] = vectors
        if fitted.owner is None:
            return out
        owner = torch.as_tensor(fitted.owner, device=self.device)  # (M,)
        weight = torch.as_tensor(seqs.lengths, dtype=torch.float32, device=self.device)  # (M,)
        total = out.new_zeros((len(fitted), self.dimension)).index_add_(0, owner, out * weight[:, None])
        count = out.new_zeros(len(fitted)).index_add_(0, owner, weight)  # (N,)
        merged = total / count[:, None]
        return F.normalize(merged, p=2, dim=-1) if normalize else merged

    def embed(
        self,
        texts: str | Iterable[str],
        *,
        batch_tokens: int | None = None,
        normalize: bool | None = None,
        progress: bool | None = None,
        threads: int | None = None,
        output: Literal["numpy", "torch"] = "numpy",
        truncate: str = "warn",
    ) -> Any:
        """Sentence vectors, in input order.

        Args:
            texts: N strings (one string gives one vector). Empty strings embed ``[CLS] [SEP]``.
            batch_tokens: padded tokens per batch (default :data:`DEFAULT_BATCH_TOKENS`).
            normalize: L2-normalise; None = as the model says (sentence-transformers' Normalize).
            progress: progress bar on stderr; None = on long jobs when stderr is a terminal.
            threads: torch CPU threads for this call.
            output: ``"numpy"`` (float32 ndarray) or ``"torch"`` (float32 tensor on the device).
            truncate: texts longer than :attr:`max_length`: ``"warn"`` (cut, one warning),
                ``"silent"`` (cut), ``"error"`` (raise) or ``"chunk"`` (windows, averaged).

        Returns:
            ``(N, H)`` float32; ``(H,)`` for a single string; ``(0, H)`` for no texts.

        Raises:
            InputError: an item that is not a string, a text too long under ``truncate="error"``,
                or a bad option.
        """
        import torch

        self._require("embed")
        if output not in ("numpy", "torch"):
            raise InputError(f"output={output!r} is unknown; use 'numpy' or 'torch'")
        items, single = _as_text_list(texts, "embed")
        items = _check_strings(items, "embed")
        if truncate not in TRUNCATE_POLICIES:
            raise InputError(f"truncate={truncate!r} is unknown; use one of {', '.join(TRUNCATE_POLICIES)}")
        if items:
            out = self.embed_encoded(self.encode_for_embedding(items, truncate), batch_tokens=batch_tokens,
                                     normalize=normalize, progress=progress, threads=threads)
        else:
            out = torch.empty((0, self.dimension), dtype=torch.float32, device=self.device)
        result = out[0] if single else out
        return result if output == "torch" else result.cpu().numpy()

    # -- classify --------------------------------------------------------------------------------
    def classify(
        self,
        texts: Any,
        *,
        top_k: int | None = 1,
        function_to_apply: Literal["softmax", "sigmoid", "none"] | None = None,
        batch_tokens: int | None = None,
        progress: bool | None = None,
        threads: int | None = None,
    ) -> Any:
        """Labels and scores per text, as transformers' text-classification pipeline gives them.

        Args:
            texts: N strings, ``(text, text_pair)`` tuples or ``{"text", "text_pair"}`` dicts; one
                item gives one result.
            top_k: 1 → one ``{"label", "score"}`` dict per text (the pipeline's default form);
                k > 1 → the k best as a list of dicts, best first; None → every label.
            function_to_apply: scores from logits; default by ``problem_type`` as transformers
                does: regression → none, multi-label or one label → sigmoid, else softmax.

        Raises:
            InputError: a bad item or option.
        """
        import torch

        self._require("classify")
        items, single = _as_text_list(texts, "classify")
        items = _check_strings(items, "classify", pairs=True)
        n_labels = int(self.model.num_labels)
        if top_k is not None and top_k < 1:
            raise InputError(f"top_k={top_k} must be at least 1, or None for every label")
        function = function_to_apply or _default_function(getattr(self.model, "problem_type", None), n_labels)
        if function not in ("softmax", "sigmoid", "none"):
            raise InputError(f"function_to_apply={function!r} is unknown; use 'softmax', 'sigmoid' or 'none'")
        id2label = self.model.id2label
        logits = torch.empty((len(items), n_labels), dtype=torch.float32)
        if items:
            enc = self._tokenize(items)
            with self._running(threads):
                # padded batches: the trunk packs them itself; the head needs its pooler on (B, S, H)
                for batch in self._batches(enc, batch_tokens, progress, packed=False):
                    logits[batch.index.cpu()] = self.model(**batch.inputs, return_dict=True).logits.float().cpu()
        if function == "softmax":
            scores = logits.softmax(dim=-1)
        elif function == "sigmoid":
            scores = logits.sigmoid()
        else:
            scores = logits
        results: list[Any] = []
        k = n_labels if top_k is None else min(top_k, n_labels)
        for row in scores.tolist():
            ranked = sorted(range(n_labels), key=lambda j: -row[j])[:k]
            labelled = [{"label": id2label.get(j, f"LABEL_{j}"), "score": row[j]} for j in ranked]
            results.append(labelled[0] if top_k == 1 else labelled)
        return results[0] if single else results

    # -- fill-mask -------------------------------------------------------------------------------
    def fill_mask(
        self,
        texts: str | Iterable[str],
        *,
        top_k: int = 5,
        batch_tokens: int | None = None,
        progress: bool | None = None,
        threads: int | None = None,
    ) -> Any:
        """The most likely tokens for each mask token, as transformers' fill-mask pipeline gives them.

        Args:
            texts: N strings, each with at least one mask token (``[MASK]``); one string gives one result.
            top_k: candidates per mask.

        Returns:
            Per text, a list of ``{"score", "token", "token_str", "sequence"}`` dicts, best first; a
            text with several masks gives one such list per mask (``sequence`` then keeps the other
            masks, as transformers does).

        Raises:
            InputError: a text without a mask token, or a bad option.
        """
        import torch

        self._require("fill-mask")
        items, single = _as_text_list(texts, "fill_mask")
        items = _check_strings(items, "fill_mask")
        mask_id = self.tokenizer.mask_id
        if mask_id is None:
            raise InputError(f"the tokenizer of {str(self.folder)!r} has no mask token; fill_mask needs one")
        if top_k < 1:
            raise InputError(f"top_k={top_k} must be at least 1")
        top_k = min(top_k, int(self.model.spec.vocab_size))
        mask_token = self.tokenizer.special_tokens["mask"]
        results: list[Any] = [None] * len(items)
        if not items:
            return []
        enc = self._tokenize(items)
        for i, ids in enumerate(enc.ids):
            if mask_id not in ids:
                raise InputError(
                    f"fill_mask: text {i} ({items[i]!r:.60}) has no {mask_token} token"
                    + (" left after truncation" if enc.truncated[i] else "")
                    + f"; put {mask_token} where a word should be predicted"
                )
        with self._running(threads):
            for batch in self._batches(enc, batch_tokens, progress, packed=self.packed):
                hidden = self._hidden(batch)  # (T, H) or (B, S, H)
                where = batch.inputs["input_ids"] == mask_id  # (T,) or (B, S)
                # the vocabulary projection only at mask positions, not at every token
                probs = self.model.cls(hidden[where]).float().softmax(dim=-1)  # (M, V)
                values, tokens = probs.topk(top_k, dim=-1)  # (M, k)
                if hidden.dim() == 2:
                    cu = batch.inputs["cu_seqlens"].to(where.device)
                    rows = torch.searchsorted(cu, where.nonzero().squeeze(1), right=True) - 1
                else:
                    rows = where.nonzero(as_tuple=True)[0]
                per_text: dict[int, list[int]] = {}
                for m, r in enumerate(rows.tolist()):
                    per_text.setdefault(r, []).append(m)
                index = batch.index.tolist()
                for r, masks in per_text.items():
                    results[index[r]] = self._fill_results(enc.ids[index[r]], masks, values, tokens, mask_id)
        return results[0] if single else results

    def _fill_results(self, ids: list[int], masks: list[int], values: Tensor, tokens: Tensor,
                      mask_id: int) -> Any:
        positions = [p for p, t in enumerate(ids) if t == mask_id]
        single_mask = len(positions) == 1
        out = []
        for pos, m in zip(positions, masks, strict=True):
            row = []
            for score, token in zip(values[m].tolist(), tokens[m].tolist(), strict=True):
                filled = list(ids)
                filled[pos] = token
                row.append({
                    "score": score,
                    "token": token,
                    "token_str": self.tokenizer.decode([token], skip_special_tokens=False),
                    # like transformers: other masks stay visible when there are several
                    "sequence": self.tokenizer.decode(filled, skip_special_tokens=single_mask),
                })
            out.append(row)
        return out[0] if single_mask else out


def _default_function(problem_type: str | None, num_labels: int) -> str:
    """transformers' text-classification rule for turning logits into scores."""
    if problem_type == "regression":
        return "none"
    if problem_type == "multi_label_classification" or num_labels == 1:
        return "sigmoid"
    return "softmax"


# -- module-level functions ----------------------------------------------------------------------------

_pipelines: OrderedDict[PipelineOptions, Pipeline] = OrderedDict()
_pipelines_lock = threading.Lock()


def get_pipeline(
    task: Task,
    model: str | os.PathLike[str] | None = None,
    *,
    dtype: str = "float32",
    quantize: str | None = None,
    compile: bool = False,
    device: str | None = None,
    attention: str | None = None,
    max_length: int | None = None,
) -> Pipeline:
    """A :class:`Pipeline` for these options, loaded once and kept (the last few are cached)."""
    from bertzoo.default_model import resolve_model

    folder = resolve_model(model)
    dtype_name = _DTYPE_NAMES.get(str(dtype).replace("torch.", "").lower(), str(dtype))
    key = PipelineOptions(task, str(folder), dtype_name, quantize, bool(compile), device, attention, max_length)
    with _pipelines_lock:
        pipe = _pipelines.get(key)
        if pipe is not None:
            _pipelines.move_to_end(key)
            return pipe
    pipe = Pipeline(folder, task=task, dtype=dtype, quantize=quantize, compile=compile, device=device,
                    attention=attention, max_length=max_length)
    with _pipelines_lock:
        _pipelines[key] = pipe
        while len(_pipelines) > _CACHE_SIZE:
            _pipelines.popitem(last=False)
    return pipe


def clear_cache() -> None:
    """Forget the pipelines the module-level functions keep."""
    with _pipelines_lock:
        _pipelines.clear()


def embed(
    texts: str | Iterable[str],
    model: str | os.PathLike[str] | None = None,
    *,
    batch_tokens: int | None = None,
    dtype: str = "float32",
    quantize: str | None = None,
    compile: bool = False,
    threads: int | None = None,
    device: str | None = None,
    normalize: bool | None = None,
    progress: bool | None = None,
    output: Literal["numpy", "torch"] = "numpy",
    truncate: str = "warn",
) -> Any:
    """Sentence vectors for ``texts`` (see :meth:`Pipeline.embed`); the model is loaded once and cached.

    ``model=None`` is all-MiniLM-L6-v2 (384-dim, L2-normalised, 256-token truncation).
    """
    pipe = get_pipeline("embed", model, dtype=dtype, quantize=quantize, compile=compile, device=device)
    return pipe.embed(texts, batch_tokens=batch_tokens, normalize=normalize, progress=progress, threads=threads,
                      output=output, truncate=truncate)


def classify(
    texts: Any,
    model: str | os.PathLike[str] | None = None,
    *,
    top_k: int | None = 1,
    function_to_apply: Literal["softmax", "sigmoid", "none"] | None = None,
    batch_tokens: int | None = None,
    dtype: str = "float32",
    quantize: str | None = None,
    compile: bool = False,
    threads: int | None = None,
    device: str | None = None,
    progress: bool | None = None,
) -> Any:
    """Labels and scores (see :meth:`Pipeline.classify`) from a sequence-classification checkpoint."""
    pipe = get_pipeline("classify", model, dtype=dtype, quantize=quantize, compile=compile, device=device)
    return pipe.classify(texts, top_k=top_k, function_to_apply=function_to_apply, batch_tokens=batch_tokens,
                         progress=progress, threads=threads)


def fill_mask(
    texts: str | Iterable[str],
    model: str | os.PathLike[str] | None = None,
    *,
    top_k: int = 5,
    batch_tokens: int | None = None,
    dtype: str = "float32",
    quantize: str | None = None,
    compile: bool = False,
    threads: int | None = None,
    device: str | None = None,
    progress: bool | None = None,
) -> Any:
    """Predictions for mask tokens (see :meth:`Pipeline.fill_mask`) from a masked-lm checkpoint."""
    pipe = get_pipeline("fill-mask", model, dtype=dtype, quantize=quantize, compile=compile, device=device)
    return pipe.fill_mask(texts, top_k=top_k, batch_tokens=batch_tokens, progress=progress, threads=threads)


def similarity(a: str, b: str, model: str | os.PathLike[str] | None = None, **options: Any) -> float:
    """Cosine similarity of two texts' embeddings."""
    vectors = embed([a, b], model, output="numpy", **options)
    x, y = vectors[0].astype(np.float64), vectors[1].astype(np.float64)
    denominator = float(np.linalg.norm(x) * np.linalg.norm(y)) or 1.0
    return float(x @ y / denominator)


def model_info(model: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """What ``bertzoo info`` prints: folder, spec summary, max length and its source, head, pooling.

    Reads config and tokenizer files only; builds nothing.
    """
    import json

    from bertzoo.checkpoint import read_sentence_transformers_info
    from bertzoo.default_model import resolve_model
    from bertzoo.tokenizer import Tokenizer

    folder = resolve_model(model)
    st_info = read_sentence_transformers_info(folder)
    model_dir = st_info.transformer_path if st_info is not None else folder
    config_file = model_dir / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    tok = Tokenizer.from_folder(model_dir)
    architectures = config.get("architectures") or ["BertModel"]
    info: dict[str, Any] = {
        "folder": str(folder),
        "architecture": architectures[0],
        "head": "sentence-embedding" if st_info is not None else _head_for_architecture(str(architectures[0])),
        "layers": config.get("num_hidden_layers"),
        "hidden_size": config.get("hidden_size"),
        "attention_heads": config.get("num_attention_heads"),
        "intermediate_size": config.get("intermediate_size"),
        "vocab_size": config.get("vocab_size"),
        "max_position_embeddings": config.get("max_position_embeddings"),
        "max_length": tok.max_length,
        "max_length_source": tok.max_length_resolution.source,
        "tokenizer": tok.source,
    }
    if st_info is not None:
        info["pooling"] = st_info.pooling_mode
        info["normalize"] = st_info.normalize
        info["sentence_transformers_modules"] = list(st_info.modules)
    if config.get("id2label") and info["head"] == "sequence-classification":
        info["labels"] = [config["id2label"][k] for k in sorted(config["id2label"], key=int)]
    weights = sorted(p.name for p in Path(model_dir).glob("*.safetensors"))
    info["weights"] = weights
    return info


def _head_for_architecture(architecture: str) -> str | None:
    from bertzoo.checkpoint import TRUNK_ARCHITECTURE, head_record_for_architecture
    from bertzoo.discovery import get_registry

    if architecture == TRUNK_ARCHITECTURE:
        return None
    record = head_record_for_architecture(architecture, get_registry())
    return record.full_name.split(":", 1)[-1] if record is not None else None


__all__ = [
    "DEFAULT_BATCH_TOKENS", "TRUNCATE_POLICIES", "Pipeline", "PipelineOptions", "TruncationWarning", "classify",
    "clear_cache", "truncation_summary",
    "embed", "fill_mask", "get_pipeline", "model_info", "plan_batches", "similarity",
]
