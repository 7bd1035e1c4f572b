"""Registers the task heads (entry point ``heads`` in group ``bertzoo``), and their options models.

Light on purpose: no torch here. Targets are ``"module:attr"`` strings imported only when a
head is built, so ``bertzoo list head`` stays fast. Each head's metadata names the transformers
class whose checkpoints it reads and writes (``hf_architecture``), so the checkpoint loader can
map ``config.json``'s ``architectures[0]`` to a head.
"""

from __future__ import annotations

from typing import Any

from bertzoo.hookspecs import hookimpl

HEADS = "bertzoo.heads"
OPTIONS = f"{HEADS}.options"

# name -> (class in its family module, options model or None, description, transformers class)
_HEADS: dict[str, tuple[str, str | None, str, str | None]] = {
    "pretraining": (
        "pretraining:BertForPreTraining", None,
        "BERT pretraining: masked-LM + next-sentence heads (BertForPreTraining); loss = MLM + NSP",
        "BertForPreTraining",
    ),
    "masked-lm": (
        "language_modeling:BertForMaskedLM", None,
        "masked language model, decoder tied to the word embeddings (BertForMaskedLM)",
        "BertForMaskedLM",
    ),
    "causal-lm": (
        "language_modeling:BertLMHeadModel", None,
        "left-to-right language model with shifted-label loss and KV cache (BertLMHeadModel)",
        "BertLMHeadModel",
    ),
    "next-sentence": (
        "pretraining:BertForNextSentencePrediction", None,
        "next-sentence prediction on the pooled output (BertForNextSentencePrediction)",
        "BertForNextSentencePrediction",
    ),
    "sequence-classification": (
        "classification:BertForSequenceClassification", "SequenceClassificationOptions",
        "classification or regression on the pooled output (BertForSequenceClassification)",
        "BertForSequenceClassification",
    ),
    "multiple-choice": (
        "classification:BertForMultipleChoice", None,
        "one score per choice of a (batch, choices, seq) input (BertForMultipleChoice)",
        "BertForMultipleChoice",
    ),
    "token-classification": (
        "classification:BertForTokenClassification", "TokenClassificationOptions",
        "one label per token, e.g. NER (BertForTokenClassification)",
        "BertForTokenClassification",
    ),
    "question-answering": (
        "question_answering:BertForQuestionAnswering", "QuestionAnsweringOptions",
        "extractive QA: start and end logits per token (BertForQuestionAnswering)",
        "BertForQuestionAnswering",
    ),
    "sentence-embedding": (
        "sentence_embedding:BertForSentenceEmbedding", "SentenceEmbeddingOptions",
        "sentence vectors: mean / cls / max pooling, optional L2 norm (sentence-transformers)",
        # chosen by head="auto" for sentence-transformers folders; saved as a BertModel folder
        # plus modules.json and 1_Pooling/config.json
        "SentenceTransformer",
    ),
}


@hookimpl
def bertzoo_register(registry: Any) -> None:
    for name, (target, options, description, hf_architecture) in _HEADS.items():
        registry.register(
            "head", name, f"{HEADS}.{target}",
            description=description,
            options=f"{OPTIONS}:{options}" if options else None,
            hf_architecture=hf_architecture,
        )
