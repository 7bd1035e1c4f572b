"""``bertzoo.SentenceEncoder``: sentence-transformers' ``SentenceTransformer`` names over a bertzoo Pipeline.

Code written for sentence-transformers runs with the import changed::

    model = bertzoo.SentenceEncoder("intfloat/e5-small-v2")        # was SentenceTransformer(...)
    emb = model.encode(sentences, batch_size=64, normalize_embeddings=True)
    scores = model.similarity(model.encode_query(q), model.encode_document(docs))

``encode`` takes sentence-transformers' arguments and returns what it returns for each
combination; the vectors come from bertzoo's engine (length-sorted token-budget batches, packed
when the trunk allows it). Prompts, ``include_prompt``, ``precision`` and ``truncate_dim`` follow
sentence-transformers 6 exactly (:mod:`bertzoo.inference.prompts`, :func:`bertzoo.util.quantize_embeddings`);
tests/compat/test_sentence_encoder.py measures the equality.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bertzoo.errors import InputError
from bertzoo.inference.pipeline import Pipeline

if TYPE_CHECKING:
    from torch import Tensor

    from bertzoo.inference.tokenizer import Tokenizer

OUTPUT_VALUES = ("sentence_embedding", "token_embeddings")


class SentenceEncoder:
    """A sentence-embedding model with sentence-transformers' ``SentenceTransformer`` interface.

    Args:
        model_name_or_path: a local folder or a hub id (sentence-transformers or plain HF layout);
            None = the default model (all-MiniLM-L6-v2).
        device: ``"cpu"``, ``"cuda"``, ...; default CPU.
        prompts: name -> prompt text; they take precedence over the folder's
            ``config_sentence_transformers.json`` prompts (which fill the other names). As in
            sentence-transformers, ``"query"`` and ``"document"`` always exist (empty unless set).
        default_prompt_name: the prompt ``encode`` applies when a call names none; None = the folder's.
        similarity_fn_name: ``"cosine"``, ``"dot"``, ``"euclidean"`` or ``"manhattan"``; None = the
            folder's, else cosine.
        truncate_dim: keep the first dimensions of every vector; None = the folder's, else all.
        compute: bertzoo's compute precision (``"float32"``, ``"bfloat16"``, ``"int8"``, ...).
        pipeline_options: more :class:`~bertzoo.inference.pipeline.Pipeline` keywords (``head``,
            ``attention``, ``max_length``, ``compile``, ``allow_random_head``).

    Raises:
        InputError: a ``default_prompt_name`` that is not a prompt, an unknown similarity function.
        CheckpointError: the model cannot be loaded.
    """

    def __init__(self, model_name_or_path: str | os.PathLike[str] | None = None, device: str | None = None,
                 prompts: Mapping[str, str] | None = None, default_prompt_name: str | None = None,
                 similarity_fn_name: str | None = None, truncate_dim: int | None = None, *,
                 compute: str | None = None, **pipeline_options: Any) -> None:
        from bertzoo.inference.embed import check_truncate_dim

        self.pipeline = Pipeline(model_name_or_path, task="embed", compute=compute, device=device, **pipeline_options)
        # sentence-transformers' merge: the caller's prompts win, saved ones fill the rest, None -> ""
        merged: dict[str, str | None] = {"query": None, "document": None, **dict(prompts or {})}
        for name, text in self.pipeline.prompts.items():
            if merged.get(name) is None:
                merged[name] = text
        self.prompts: dict[str, str] = {k: v or "" for k, v in merged.items()}
        self.default_prompt_name = default_prompt_name or self.pipeline.default_prompt_name
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise InputError(f"default_prompt_name={self.default_prompt_name!r} is not one of the prompts "
                             f"({', '.join(map(repr, self.prompts))}); add it to prompts= or pick one of those")
        self._similarity_fn_name: str | None = None
        self.similarity_fn_name = similarity_fn_name or self.pipeline.similarity_fn_name or "cosine"
        from bertzoo.inference.prompts import prompt_settings

        self.truncate_dim = truncate_dim if truncate_dim is not None else prompt_settings(self.pipeline.folder).truncate_dim
        check_truncate_dim(self.truncate_dim)

    def __repr__(self) -> str:
        return f"SentenceEncoder({str(self.pipeline.folder)!r}, device={str(self.device)!r})"

    # -- properties sentence-transformers users reach for -------------------------------------------
    @property
    def device(self) -> Any:
        """The torch device the model runs on."""
        return self.pipeline.device

    @property
    def similarity_fn_name(self) -> str:
        """``"cosine"``, ``"dot"``, ``"euclidean"`` or ``"manhattan"``: what :meth:`similarity` computes."""
        return self._similarity_fn_name or "cosine"

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str) -> None:
        from bertzoo.util import similarity_function

        name = getattr(value, "value", value)  # sentence-transformers' SimilarityFunction enum too
        similarity_function(name)  # an unknown name is an InputError
        self._similarity_fn_name = "dot" if name == "dot_product" else str(name)

    @property
    def max_seq_length(self) -> int:
        """Tokens per text (special tokens and the prompt included); longer texts are cut."""
        return self.pipeline.max_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        tok = self.pipeline.tokenizer
        found = tok.max_length_resolution.candidates
        limit = next((found[k] for k in found if k.startswith(("config.json max_position", "max_position"))), None)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"max_seq_length={value!r} must be a positive integer")
        if limit is not None and value > limit:
            raise InputError(f"max_seq_length={value} exceeds the model's {limit} positions; use at most {limit}")
        tok.max_length_resolution = replace(tok.max_length_resolution, value=int(value), source="max_seq_length set")

    @property
    def tokenizer(self) -> Tokenizer:
        """bertzoo's :class:`~bertzoo.inference.tokenizer.Tokenizer` (not a transformers tokenizer:
        ``encode_batch(texts)`` gives padded ids, ``tokenize(text)`` the tokens)."""
        return self.pipeline.tokenizer

    def get_sentence_embedding_dimension(self) -> int:
        """Width of :meth:`encode`'s vectors (``truncate_dim`` applied)."""
        width = self.pipeline.dimension
        return width if self.truncate_dim is None else min(width, int(self.truncate_dim))

    get_embedding_dimension = get_sentence_embedding_dimension  # sentence-transformers 6's name

    # -- encoding --------------------------------------------------------------------------------
    def encode(
        self,
        sentences: str | Iterable[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: str | None = "sentence_embedding",
        precision: str = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device: str | None = None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        *,
        truncate: str = "warn",
    ) -> Any:
        """Embed ``sentences``, returning what ``SentenceTransformer.encode`` returns.

        Returns:
            one string → one vector; a list → a ``(N, D)`` numpy array (float32, or int8/uint8 for
            a quantized ``precision``); ``convert_to_tensor=True`` → a torch tensor (on the CPU
            unless ``convert_to_numpy=False``); ``convert_to_numpy=False`` → a list of row tensors.
            ``output_value="token_embeddings"`` → per text a ``(tokens, H)`` float32 tensor of the
            trunk's last hidden states (all real tokens, specials and prompt included).

        Args:
            prompt_name / prompt: as in sentence-transformers: ``prompt`` wins; ``prompt_name`` picks
                one of :attr:`prompts`; neither → :attr:`default_prompt_name`'s prompt, if any.
            batch_size: bertzoo batches by tokens, not texts: a batch holds up to
                ``batch_size * max_seq_length`` tokens (packed, real tokens only), i.e. at least
                ``batch_size`` texts and more when they are short. The vectors do not depend on it.
            show_progress_bar: a progress bar on stderr; None = only for long jobs.
            precision: ``float32``, ``int8``, ``uint8``, ``binary``, ``ubinary`` (int8 ranges come
                from this call's vectors, as sentence-transformers calibrates them).
            device: must be None or the model's device (load the model with ``device=`` instead).
            normalize_embeddings: L2-normalise, after ``truncate_dim`` (the model's own Normalize
                module, if any, ran before it, as in sentence-transformers).
            truncate_dim: keep the first dimensions; None = the encoder's ``truncate_dim``.
            truncate: bertzoo's long-text policy (``"warn"``, ``"silent"``, ``"error"``, ``"chunk"``).

        Raises:
            InputError: an unknown ``prompt_name``, ``output_value`` or ``precision``, another device,
                or ``int8``/``uint8`` of a single text (no range to calibrate on).
        """
        import torch

        self._check_device(device)
        if output_value not in OUTPUT_VALUES:
            raise InputError(f"output_value={output_value!r} is not supported; use one of {', '.join(OUTPUT_VALUES)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size={batch_size!r} must be a positive integer")
        single = isinstance(sentences, str)
        items = [sentences] if isinstance(sentences, str) else list(sentences)
        text = self._resolve_prompt(prompt, prompt_name)
        budget = batch_size * self.max_seq_length
        if output_value == "token_embeddings":
            if precision != "float32" or convert_to_tensor:
                raise InputError("output_value='token_embeddings' gives one (tokens, H) tensor per text: use it with "
                                 "precision='float32' and convert_to_tensor=False")
            rows = self._token_embeddings(items, text, budget, show_progress_bar, truncate)
            return rows[0] if single else rows
        dim = self.truncate_dim if truncate_dim is None else truncate_dim
        if not items:
            return torch.tensor([]) if convert_to_tensor else np.array([]) if convert_to_numpy else []
        out = self.pipeline.embed(items, batch_tokens=budget, normalize=True if normalize_embeddings else None,
                                  progress=show_progress_bar, output="torch", truncate=truncate, prompt=text or "",
                                  precision=precision, truncate_dim=dim)
        if convert_to_tensor:
            result: Any = out.cpu() if convert_to_numpy else out
        elif convert_to_numpy:
            result = out.cpu().numpy()
        else:
            result = list(out)
        return result[0] if single else result

    def encode_query(self, sentences: str | Iterable[str], prompt_name: str | None = None, prompt: str | None = None,
                     **kwargs: Any) -> Any:
        """:meth:`encode` with the ``"query"`` prompt unless a prompt is named (an empty ``"query"``
        prompt also keeps the default prompt away, as in sentence-transformers)."""
        if prompt_name is None and prompt is None and "query" in self.prompts:
            prompt_name = "query"
        return self.encode(sentences, prompt_name=prompt_name, prompt=prompt, **kwargs)

    def encode_document(self, sentences: str | Iterable[str], prompt_name: str | None = None,
                        prompt: str | None = None, **kwargs: Any) -> Any:
        """:meth:`encode` with the first of the ``"document"``, ``"passage"``, ``"corpus"`` prompts
        unless a prompt is named."""
        if prompt_name is None and prompt is None:
            prompt_name = next((n for n in ("document", "passage", "corpus") if n in self.prompts), None)
        return self.encode(sentences, prompt_name=prompt_name, prompt=prompt, **kwargs)

    # -- scoring ---------------------------------------------------------------------------------
    def similarity(self, embeddings1: Any, embeddings2: Any) -> Tensor:
        """``(N, M)`` scores of every pair under :attr:`similarity_fn_name` (distances negated)."""
        from bertzoo.util import similarity_function

        return similarity_function(self.similarity_fn_name)(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Tensor:
        """``(N,)`` score of ``embeddings1[i]`` with ``embeddings2[i]`` under :attr:`similarity_fn_name`."""
        from bertzoo.util import similarity_function

        return similarity_function(self.similarity_fn_name, pairwise=True)(embeddings1, embeddings2)

    # -- saving ----------------------------------------------------------------------------------
    def save_pretrained(self, path: str | os.PathLike[str], **options: Any) -> Path:
        """Write the model as a folder sentence-transformers and transformers load unchanged, with
        this encoder's prompts, default prompt, similarity function and max length (see
        :func:`bertzoo.checkpoint.save.save_pretrained` for ``options``)."""
        from bertzoo.checkpoint.save import save_pretrained

        settings: dict[str, Any] = {"tokenizer": self.pipeline.tokenizer_folder, "max_seq_length": self.max_seq_length,
                                    "prompts": dict(self.prompts), "default_prompt_name": self.default_prompt_name,
                                    "similarity_fn_name": self.similarity_fn_name}
        return save_pretrained(self.pipeline.model, path, **{**settings, **options})

    save = save_pretrained  # sentence-transformers' older name

    # -- internals -------------------------------------------------------------------------------
    def _resolve_prompt(self, prompt: str | None, prompt_name: str | None) -> str | None:
        from bertzoo.inference.prompts import resolve_prompt

        return resolve_prompt(self.prompts, self.default_prompt_name, prompt, prompt_name,
                              model=repr(str(self.pipeline.folder)))

    def _check_device(self, device: str | None) -> None:
        import torch

        if device is not None and torch.device(device) != self.device:
            raise InputError(f"device={device!r}: this encoder runs on {self.device}; create "
                             f"SentenceEncoder(model, device={device!r}) to run there")

    def _token_embeddings(self, items: list[str], prompt: str | None, budget: int, progress: bool | None,
                          truncate: str) -> list[Tensor]:
        """Per text, the trunk's last hidden states of its real tokens, float32 on the device."""
        import torch

        if truncate == "chunk":
            raise InputError("output_value='token_embeddings' cannot split texts into windows; use truncate='warn'")
        pipe = self.pipeline
        pipe.require("embed")
        fitted = pipe.encode_for_embedding(items, truncate, prompt=prompt or "")
        rows: list[Tensor] = [torch.empty(0)] * len(items)
        with pipe.running(None):
            for batch in pipe.batches(fitted.sequences, budget, progress):
                states = pipe.states(batch)
                index = batch.index.tolist()
                if states.cu_seqlens is not None:
                    parts = torch.split(states.hidden, states.cu_seqlens.diff().tolist())
                else:
                    lengths = states.attention_mask.sum(dim=1).tolist()  # type: ignore[union-attr]
                    parts = tuple(states.hidden[i, :n] for i, n in enumerate(lengths))
                for i, part in zip(index, parts, strict=True):
                    rows[i] = part.float().clone()
        return rows


__all__ = ["SentenceEncoder"]
