"""The main job's public API: :class:`Pipeline` and the one-call functions.

``bertzoo.embed(texts)``, ``bertzoo.classify(texts, model=...)``, ``bertzoo.fill_mask``,
``bertzoo.rerank``, ``bertzoo.token_classify`` and ``bertzoo.answer`` load the model once (cached per
model and options) through a :class:`Pipeline`, which you can also hold yourself::

    pipe = bertzoo.Pipeline("sentence-transformers/all-MiniLM-L6-v2", compute="bfloat16")
    vectors = pipe.embed(texts)            # (N, 384) float32 numpy

How a call runs: tokenize every text at once (Rust, parallel); sort by token count and cut the
sorted list into batches under ``batch_tokens``; run each batch packed (real tokens only) when the
trunk and the head allow it, else padded; hand the hidden states to the head's task contract;
results go straight to their input position. Every task is served by a head that registered it
(``head=`` picks one; see :mod:`bertzoo.inference.engine`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bertzoo.inference import answer as _answer
from bertzoo.inference import classify as _classify
from bertzoo.inference import embed as _embed
from bertzoo.inference import fill_mask as _fill_mask
from bertzoo.inference import token_classify as _token_classify
from bertzoo.inference.engine import Engine, PipelineOptions
from bertzoo.inference.precision import precision_name

if TYPE_CHECKING:
    from torch import Tensor

    from bertzoo.inference.prompts import PromptSettings
    from bertzoo.inference.tokenizer import FittedIds

_CACHE_SIZE = 4  # pipelines kept by the module-level functions
Model = str | os.PathLike[str] | None


def _prompt_settings(folder: Path) -> PromptSettings:
    from bertzoo.inference.prompts import prompt_settings

    return prompt_settings(folder)


class Pipeline(Engine):
    """A model, its tokenizer and the head serving one task, loaded once and reusable across calls.

    See :class:`~bertzoo.inference.engine.Engine` for the arguments (``model``, ``task``, ``head``,
    ``compute`` / ``dtype`` / ``quantize``, ``compile``, ``device``, ``attention``, ``max_length``).
    """

    # -- embed -----------------------------------------------------------------------------------
    @property
    def prompts(self) -> dict[str, str]:
        """The folder's prompts (``config_sentence_transformers.json``): name -> text prepended to each input."""
        return dict(_prompt_settings(self.folder).prompts)

    @property
    def default_prompt_name(self) -> str | None:
        """The prompt :meth:`embed` applies when a call names none (None: no prompt)."""
        return _prompt_settings(self.folder).default_prompt_name

    @property
    def similarity_fn_name(self) -> str | None:
        """The folder's saved similarity function (``cosine``, ``dot``, ``euclidean``, ``manhattan``;
        None if not saved, and sentence-transformers then uses cosine)."""
        return _prompt_settings(self.folder).similarity_fn_name

    @property
    def dimension(self) -> int:
        """Width of the vectors :meth:`embed` returns."""
        return _embed.dimension(self)

    @property
    def embedding_normalize(self) -> bool:
        """Whether :meth:`embed` L2-normalises by default (as the head says)."""
        return _embed.default_normalize(self)

    def encode_for_embedding(self, texts: Sequence[str], truncate: str = "warn", *, first_index: int = 0,
                             prompt: str | None = None, prompt_name: str | None = None) -> FittedIds:
        """Prepend the prompt (``prompt``, ``prompt_name``, else :attr:`default_prompt_name`'s), tokenize
        whole texts and apply the truncation policy (see :mod:`bertzoo.inference.truncation`)."""
        return _embed.encode_for_embedding(self, texts, truncate, first_index=first_index, prompt=prompt,
                                           prompt_name=prompt_name)

    def embed_encoded(self, fitted: FittedIds, *, batch_tokens: int | None = None, normalize: bool | None = None,
                      progress: bool | None = None, threads: int | None = None,
                      truncate_dim: int | None = None) -> Tensor:
        """``(N, D)`` float32 vectors on the device of texts encoded by :meth:`encode_for_embedding`."""
        return _embed.embed_encoded(self, fitted, batch_tokens=batch_tokens, normalize=normalize, progress=progress,
                                    threads=threads, truncate_dim=truncate_dim)

    def embed(self, texts: str | Iterable[str], *, batch_tokens: int | None = None, normalize: bool | None = None,
              progress: bool | None = None, threads: int | None = None, output: Literal["numpy", "torch"] = "numpy",
              truncate: str = "warn", prompt: str | None = None, prompt_name: str | None = None,
              precision: str = "float32", truncate_dim: int | None = None) -> Any:
        """Sentence vectors in input order: ``(N, D)`` float32 (``(D,)`` for one string).

        Args:
            normalize: L2-normalise; None = as the head says (sentence-transformers' Normalize).
            output: ``"numpy"`` or ``"torch"`` (a tensor on the device).
            truncate: ``"warn"``, ``"silent"``, ``"error"`` or ``"chunk"``.
            prompt: text prepended to each input (``""``: none, not even the default prompt).
            prompt_name: one of :attr:`prompts`; None = :attr:`default_prompt_name` (if any).
            precision: ``"float32"``, ``"int8"``, ``"uint8"``, ``"binary"`` or ``"ubinary"``
                (sentence-transformers' ``quantize_embeddings``; int8 ranges come from this call).
            truncate_dim: keep the first dimensions (Matryoshka models), cut after the model's
                normalisation as sentence-transformers does; ``normalize=True`` renormalises.

        Raises:
            InputError: an unknown ``prompt_name`` (the message lists the known ones) or a bad option.
        """
        return _embed.embed(self, texts, batch_tokens=batch_tokens, normalize=normalize, progress=progress,
                            threads=threads, output=output, truncate=truncate, prompt=prompt,
                            prompt_name=prompt_name, precision=precision, truncate_dim=truncate_dim)

    # -- classify / rerank -----------------------------------------------------------------------
    def classify(self, texts: Any, *, top_k: int | None = 1,
                 function_to_apply: Literal["softmax", "sigmoid", "none"] | None = None,
                 batch_tokens: int | None = None, progress: bool | None = None, threads: int | None = None) -> Any:
        """Labels and scores per text or text pair (transformers' text-classification pipeline)."""
        return _classify.classify(self, texts, top_k=top_k, function_to_apply=function_to_apply,
                                  batch_tokens=batch_tokens, progress=progress, threads=threads)

    def rerank(self, query: str, documents: Sequence[str], *, top_k: int | None = None, raw: bool = False,
               return_documents: bool = False, batch_tokens: int | None = None, progress: bool | None = None,
               threads: int | None = None) -> list[dict[str, Any]]:
        """``[{"index", "score"}]`` best first (score = sigmoid of the cross-encoder's logit)."""
        return _classify.rerank(self, query, documents, top_k=top_k, raw=raw, return_documents=return_documents,
                                batch_tokens=batch_tokens, progress=progress, threads=threads)

    # -- token-level tasks -------------------------------------------------------------------------
    def fill_mask(self, texts: str | Iterable[str], *, top_k: int = 5, batch_tokens: int | None = None,
                  progress: bool | None = None, threads: int | None = None) -> Any:
        """Candidates for each mask token (transformers' fill-mask pipeline)."""
        return _fill_mask.fill_mask(self, texts, top_k=top_k, batch_tokens=batch_tokens, progress=progress,
                                    threads=threads)

    def token_classify(self, texts: str | Iterable[str], *, aggregation: str = "simple",
                       batch_tokens: int | None = None, progress: bool | None = None,
                       threads: int | None = None) -> Any:
        """Entities per text (transformers' token-classification pipeline)."""
        return _token_classify.token_classify(self, texts, aggregation=aggregation, batch_tokens=batch_tokens,
                                              progress=progress, threads=threads)

    def answer(self, question: str, context: str, *, max_answer_len: int = _answer.MAX_ANSWER_LEN,
               batch_tokens: int | None = None, threads: int | None = None) -> dict[str, Any]:
        """The best answer span in ``context`` (transformers' question-answering pipeline)."""
        return _answer.answer(self, question, context, max_answer_len=max_answer_len, batch_tokens=batch_tokens,
                              threads=threads)


# -- module-level functions ----------------------------------------------------------------------------

_pipelines: OrderedDict[PipelineOptions, Pipeline] = OrderedDict()
_pipelines_lock = threading.Lock()


def get_pipeline(task: str, model: Model = None, *, head: str | None = None, compute: str | None = None,
                 dtype: Any = None, quantize: str | None = None, compile: bool = False, device: str | None = None,
                 attention: str | None = None, max_length: int | None = None,
                 allow_random_head: bool = False) -> Pipeline:
    """A :class:`Pipeline` for these options, loaded once and kept (the last few are cached).

    ``allow_random_head=True`` runs a task head whose weights the checkpoint lacks (its answers are
    noise); without it such a pipeline is refused (see :class:`~bertzoo.inference.engine.Engine`).
    """
    from bertzoo.checkpoint.default_model import resolve_model

    folder = resolve_model(model)
    key = PipelineOptions(task, str(folder), precision_name(compute, dtype=dtype, quantize=quantize), bool(compile),
                          device, attention, max_length, head, bool(allow_random_head))
    with _pipelines_lock:
        pipe = _pipelines.get(key)
        if pipe is not None:
            _pipelines.move_to_end(key)
            return pipe
    pipe = Pipeline(folder, task=task, head=head, compute=key.compute, compile=compile, device=device,
                    attention=attention, max_length=max_length, allow_random_head=bool(allow_random_head))
    with _pipelines_lock:
        _pipelines[key] = pipe
        while len(_pipelines) > _CACHE_SIZE:
            _pipelines.popitem(last=False)
    return pipe


def clear_cache() -> None:
    """Forget the pipelines the module-level functions keep."""
    with _pipelines_lock:
        _pipelines.clear()


def embed(texts: str | Iterable[str], model: Model = None, *, head: str | None = None,
          batch_tokens: int | None = None, compute: str | None = None, dtype: Any = None, quantize: str | None = None,
          compile: bool = False, threads: int | None = None, device: str | None = None, normalize: bool | None = None,
          progress: bool | None = None, output: Literal["numpy", "torch"] = "numpy", truncate: str = "warn",
          prompt: str | None = None, prompt_name: str | None = None, precision: str = "float32",
          truncate_dim: int | None = None, allow_random_head: bool = False) -> Any:
    """Sentence vectors for ``texts`` (see :meth:`Pipeline.embed`); the model is loaded once and cached.

    ``model=None`` is all-MiniLM-L6-v2 (384-dim, L2-normalised, 256-token truncation). A folder whose
    ``config_sentence_transformers.json`` sets ``default_prompt_name`` gets that prompt unless
    ``prompt=`` / ``prompt_name=`` say otherwise (``prompt=""``: no prompt).
    """
    pipe = get_pipeline("embed", model, head=head, compute=compute, dtype=dtype, quantize=quantize, compile=compile,
                        device=device, allow_random_head=allow_random_head)
    return pipe.embed(texts, batch_tokens=batch_tokens, normalize=normalize, progress=progress, threads=threads,
                      output=output, truncate=truncate, prompt=prompt, prompt_name=prompt_name,
                      precision=precision, truncate_dim=truncate_dim)


def classify(texts: Any, model: Model = None, *, head: str | None = None, top_k: int | None = 1,
             function_to_apply: Literal["softmax", "sigmoid", "none"] | None = None, batch_tokens: int | None = None,
             compute: str | None = None, dtype: Any = None, quantize: str | None = None, compile: bool = False,
             threads: int | None = None, device: str | None = None, progress: bool | None = None,
             allow_random_head: bool = False) -> Any:
    """Labels and scores (see :meth:`Pipeline.classify`) from a sequence-classification checkpoint."""
    pipe = get_pipeline("classify", model, head=head, compute=compute, dtype=dtype, quantize=quantize,
                        compile=compile, device=device, allow_random_head=allow_random_head)
    return pipe.classify(texts, top_k=top_k, function_to_apply=function_to_apply, batch_tokens=batch_tokens,
                         progress=progress, threads=threads)


def rerank(query: str, documents: Sequence[str], model: Model = None, *, head: str | None = None,
           top_k: int | None = None, raw: bool = False, return_documents: bool = False,
           batch_tokens: int | None = None, compute: str | None = None, dtype: Any = None,
           quantize: str | None = None, compile: bool = False, threads: int | None = None,
           device: str | None = None, progress: bool | None = None,
           allow_random_head: bool = False) -> list[dict[str, Any]]:
    """``documents`` ranked for ``query`` by a cross-encoder (see :meth:`Pipeline.rerank`)."""
    pipe = get_pipeline("rerank", model, head=head, compute=compute, dtype=dtype, quantize=quantize,
                        compile=compile, device=device, allow_random_head=allow_random_head)
    return pipe.rerank(query, documents, top_k=top_k, raw=raw, return_documents=return_documents,
                       batch_tokens=batch_tokens, progress=progress, threads=threads)


def fill_mask(texts: str | Iterable[str], model: Model = None, *, head: str | None = None, top_k: int = 5,
              batch_tokens: int | None = None, compute: str | None = None, dtype: Any = None,
              quantize: str | None = None, compile: bool = False, threads: int | None = None,
              device: str | None = None, progress: bool | None = None, allow_random_head: bool = False) -> Any:
    """Predictions for mask tokens (see :meth:`Pipeline.fill_mask`) from a masked-lm checkpoint."""
    pipe = get_pipeline("fill-mask", model, head=head, compute=compute, dtype=dtype, quantize=quantize,
                        compile=compile, device=device, allow_random_head=allow_random_head)
    return pipe.fill_mask(texts, top_k=top_k, batch_tokens=batch_tokens, progress=progress, threads=threads)


def token_classify(texts: str | Iterable[str], model: Model = None, *, head: str | None = None,
                   aggregation: str = "simple", batch_tokens: int | None = None, compute: str | None = None,
                   dtype: Any = None, quantize: str | None = None, compile: bool = False, threads: int | None = None,
                   device: str | None = None, progress: bool | None = None,
                   allow_random_head: bool = False) -> Any:
    """Entities per text (see :meth:`Pipeline.token_classify`) from a token-classification checkpoint."""
    pipe = get_pipeline("token-classify", model, head=head, compute=compute, dtype=dtype, quantize=quantize,
                        compile=compile, device=device, allow_random_head=allow_random_head)
    return pipe.token_classify(texts, aggregation=aggregation, batch_tokens=batch_tokens, progress=progress,
                               threads=threads)


def answer(question: str, context: str, model: Model = None, *, head: str | None = None,
           max_answer_len: int = _answer.MAX_ANSWER_LEN, batch_tokens: int | None = None,
           compute: str | None = None, dtype: Any = None, quantize: str | None = None, compile: bool = False,
           threads: int | None = None, device: str | None = None,
           allow_random_head: bool = False) -> dict[str, Any]:
    """The answer to ``question`` in ``context`` (see :meth:`Pipeline.answer`) from a QA checkpoint."""
    pipe = get_pipeline("answer", model, head=head, compute=compute, dtype=dtype, quantize=quantize,
                        compile=compile, device=device, allow_random_head=allow_random_head)
    return pipe.answer(question, context, max_answer_len=max_answer_len, batch_tokens=batch_tokens, threads=threads)


def similarity(a: str, b: str, model: Model = None, **options: Any) -> float:
    """Cosine similarity of two texts' embeddings."""
    vectors = embed([a, b], model, output="numpy", **options)
    x, y = vectors[0].astype(np.float64), vectors[1].astype(np.float64)
    denominator = float(np.linalg.norm(x) * np.linalg.norm(y)) or 1.0
    return float(x @ y / denominator)


def model_info(model: Model = None) -> dict[str, Any]:
    """What ``bertzoo info`` prints: folder, spec summary, max length and its source, head, pooling.

    Reads config and tokenizer files only; builds nothing.
    """
    import json

    from bertzoo.checkpoint import family_of, read_sentence_transformers_info
    from bertzoo.checkpoint.default_model import resolve_model
    from bertzoo.discovery import get_registry
    from bertzoo.inference.engine import head_tasks, recorded_head
    from bertzoo.inference.tokenizer import Tokenizer

    folder = resolve_model(model)
    st_info = read_sentence_transformers_info(folder)
    model_dir = st_info.transformer_path if st_info is not None else folder
    config_file = model_dir / "config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    tok = Tokenizer.from_folder(model_dir)
    registry = get_registry()
    family = family_of(config, registry)
    architectures = config.get("architectures") or [family.trunk_architecture]
    record = recorded_head(folder, registry)
    sizes = family.spec_fields(config)  # the family's own config names (DistilBERT's dim, n_layers) as BERT's
    info: dict[str, Any] = {
        "folder": str(folder),
        "family": family.model_type,
        "architecture": architectures[0],
        "head": record.name if record is not None else None,
        "tasks": list(head_tasks(record)) if record is not None else [],
        "layers": sizes.get("num_hidden_layers"),
        "hidden_size": sizes.get("hidden_size"),
        "attention_heads": sizes.get("num_attention_heads"),
        "intermediate_size": sizes.get("intermediate_size"),
        "vocab_size": sizes.get("vocab_size"),
        "max_position_embeddings": sizes.get("max_position_embeddings"),
        "max_length": tok.max_length,
        "max_length_source": tok.max_length_resolution.source,
        "tokenizer": tok.source,
    }
    if st_info is not None:
        info["pooling"] = st_info.pooling_mode
        info["normalize"] = st_info.normalize
        info["sentence_transformers_modules"] = list(st_info.modules)
    if config.get("id2label") and "classify" in info["tasks"]:
        info["labels"] = [config["id2label"][k] for k in sorted(config["id2label"], key=int)]
    info["weights"] = sorted(p.name for p in Path(model_dir).glob("*.safetensors"))
    return info


__all__ = ["Pipeline", "PipelineOptions", "answer", "classify", "clear_cache", "embed", "fill_mask", "get_pipeline",
           "model_info", "rerank", "similarity", "token_classify"]
