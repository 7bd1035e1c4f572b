"""Registers the task heads (entry point ``heads`` in group ``bertzoo``), and their options models.

Light on purpose: no torch here. Targets are ``"module:attr"`` strings imported only when a
head is built, so ``bertzoo list head`` stays fast. Each head's metadata names the transformers
class whose checkpoints it reads and writes (``hf_architecture``), so the checkpoint loader can
map ``config.json``'s ``architectures[0]`` to a head, and the main-job task(s) it serves
(``task``), whose contract (:mod:`bertzoo.interfaces`) the head class implements.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from bertzoo.hookspecs import hookimpl

HEADS = "bertzoo.heads"
OPTIONS = f"{HEADS}.options"


class _Head(NamedTuple):
    target: str  # "family_module:Class"
    options: str | None  # options model in bertzoo.heads.options
    description: str
    hf_architecture: str | None  # the transformers class whose checkpoints it reads and writes
    task: str | tuple[str, ...] | None = None  # main-job task(s) it serves
    family: str | None = "bert"  # the family whose math it follows (None: any family's trunk)


_HEADS: dict[str, _Head] = {
    "pretraining": _Head(
        "pretraining:BertForPreTraining", None,
        "BERT pretraining: masked-LM + next-sentence heads (BertForPreTraining); loss = MLM + NSP",
        "BertForPreTraining",
        "fill-mask",
    ),
    "masked-lm": _Head(
        "language_modeling:BertForMaskedLM", None,
        "masked language model, decoder tied to the word embeddings (BertForMaskedLM)",
        "BertForMaskedLM",
        "fill-mask",
    ),
    "causal-lm": _Head(
        "language_modeling:BertLMHeadModel", None,
        "left-to-right language model with shifted-label loss and KV cache (BertLMHeadModel)",
        "BertLMHeadModel",
    ),
    "next-sentence": _Head(
        "pretraining:BertForNextSentencePrediction", None,
        "next-sentence prediction on the pooled output (BertForNextSentencePrediction)",
        "BertForNextSentencePrediction",
    ),
    "sequence-classification": _Head(
        "classification:BertForSequenceClassification", "SequenceClassificationOptions",
        "classification or regression on the pooled output (BertForSequenceClassification)",
        "BertForSequenceClassification",
        ("classify", "rerank"),
    ),
    "multiple-choice": _Head(
        "classification:BertForMultipleChoice", None,
        "one score per choice of a (batch, choices, seq) input (BertForMultipleChoice)",
        "BertForMultipleChoice",
    ),
    "token-classification": _Head(
        "classification:BertForTokenClassification", "TokenClassificationOptions",
        "one label per token, e.g. NER (BertForTokenClassification)",
        "BertForTokenClassification",
        "token-classify",
    ),
    "question-answering": _Head(
        "question_answering:BertForQuestionAnswering", "QuestionAnsweringOptions",
        "extractive QA: start and end logits per token (BertForQuestionAnswering)",
        "BertForQuestionAnswering",
        "answer",
    ),
    "sentence-embedding": _Head(
        "sentence_embedding:BertForSentenceEmbedding", "SentenceEmbeddingOptions",
        "sentence vectors: mean / cls / max pooling, optional L2 norm (sentence-transformers)",
        # chosen by head="auto" for sentence-transformers folders; saved as a BertModel folder
        # plus modules.json and 1_Pooling/config.json
        "SentenceTransformer",
        "embed",
        None,  # pools any family's trunk
    ),
}


@hookimpl
def bertzoo_register(registry: Any) -> None:
    for name, head in _HEADS.items():
        task = {} if head.task is None else {"task": head.task}
        if head.family is not None:
            task["family"] = head.family
        registry.register(
            "head", name, f"{HEADS}.{head.target}",
            description=head.description,
            options=f"{OPTIONS}:{head.options}" if head.options else None,
            hf_architecture=head.hf_architecture,
            **task,
        )
