"""What the LangChain and LlamaIndex embedding classes share: one bertzoo pipeline, and the prompt
each side (queries, documents) gets, chosen as sentence-transformers' ``encode_query`` /
``encode_document`` choose it.

A side's prompt is, in order: the literal prompt text given (``""``: none); the prompt name given
(one of the folder's ``config_sentence_transformers.json`` prompts); the first of the side's
conventional names the folder has (``query``; ``document``, ``passage``, ``corpus``, and ``text``
for LlamaIndex); else none, as sentence-transformers, whose empty ``query`` / ``document`` prompts
override the folder's default prompt in ``encode_query`` / ``encode_document``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bertzoo.errors import BertzooError, InputError
from bertzoo.inference.pipeline import Pipeline, get_pipeline

QUERY_NAMES = ("query",)
DOCUMENT_NAMES = ("document", "passage", "corpus")


def missing_extra(package: str, extra: str, cls: str) -> BertzooError:
    """The error for an adapter whose framework is not installed."""
    return BertzooError(f"{cls} needs {package}, which is not installed; install the extra: "
                        f"pip install 'bertzoo[{extra}]'")


@dataclass(frozen=True)
class Side:
    """The keyword arguments :meth:`bertzoo.Pipeline.embed` gets for one side (queries or documents)."""

    prompt: str | None = None
    prompt_name: str | None = None

    def kwargs(self) -> dict[str, str | None]:
        return {"prompt": self.prompt, "prompt_name": self.prompt_name}


def choose_side(pipe: Pipeline, prompt: str | None, prompt_name: str | None, names: Sequence[str]) -> Side:
    """The prompt of one side (see the module docstring).

    Raises:
        InputError: a ``prompt_name`` the folder does not define (the message lists those it does).
    """
    if prompt is not None:
        return Side(prompt=prompt)
    prompts = pipe.prompts
    if prompt_name is not None:
        if prompt_name not in prompts:
            raise InputError(f"prompt name {prompt_name!r} is not one of the prompts of {str(pipe.folder)!r} "
                             f"({', '.join(prompts) or 'it defines none'}); pass one of those or a prompt text")
        return Side(prompt_name=prompt_name)
    found = next((name for name in names if name in prompts), None)
    return Side(prompt_name=found) if found is not None else Side(prompt="")


class PromptedEmbedder:
    """A bertzoo embedding pipeline plus the query and document prompts: what both adapters call.

    Args:
        model: a folder, a hub id, a loaded :class:`bertzoo.Pipeline`, or None (the default model).
        compute, device: bertzoo's compute precision and device (ignored for a given Pipeline).
        normalize: L2-normalise; None = as the model says (sentence-transformers' Normalize).
        query_prompt, query_prompt_name, document_prompt, document_prompt_name: each side's prompt.
        document_names: the conventional prompt names of the document side.
        batch_tokens: bertzoo's token budget per batch (None: its default).
        pipeline_options: more :func:`bertzoo.inference.pipeline.get_pipeline` keywords.
    """

    def __init__(self, model: str | os.PathLike[str] | Pipeline | None = None, *, compute: str | None = None,
                 device: str | None = None, normalize: bool | None = None, query_prompt: str | None = None,
                 query_prompt_name: str | None = None, document_prompt: str | None = None,
                 document_prompt_name: str | None = None, document_names: Sequence[str] = DOCUMENT_NAMES,
                 batch_tokens: int | None = None, **pipeline_options: Any) -> None:
        if isinstance(model, Pipeline):
            model.require("embed")
            self.pipeline = model
        else:
            self.pipeline = get_pipeline("embed", model, compute=compute, device=device, **pipeline_options)
        self.normalize = normalize
        self.batch_tokens = batch_tokens
        self.query = choose_side(self.pipeline, query_prompt, query_prompt_name, QUERY_NAMES)
        self.document = choose_side(self.pipeline, document_prompt, document_prompt_name, document_names)

    @property
    def name(self) -> str:
        return str(self.pipeline.folder)

    def embed(self, texts: Sequence[str], side: Side) -> list[list[float]]:
        """Vectors of ``texts`` with ``side``'s prompt, as lists of floats, in input order."""
        if isinstance(texts, str):
            raise InputError("pass a list of texts (a single string would be embedded character by character)")
        if not texts:
            return []
        vectors = self.pipeline.embed(list(texts), normalize=self.normalize, batch_tokens=self.batch_tokens,
                                      progress=False, output="numpy", **side.kwargs())
        return vectors.tolist()  # type: ignore[no-any-return]  # Python floats


__all__ = ["DOCUMENT_NAMES", "QUERY_NAMES", "PromptedEmbedder", "Side", "choose_side", "missing_extra"]
