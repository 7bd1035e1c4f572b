"""Registers the RoBERTa and XLM-RoBERTa families: embedding, heads, presets.

Light on purpose (no torch): targets are ``"module:attr"`` strings, imported when built. Both
families are BERT's trunk (``bert`` layers, ``cls-tanh`` pooler) with the ``roberta`` embedding
(padding-aware positions, :mod:`bertzoo.plugins.roberta`) and the heads of
:mod:`bertzoo.heads.roberta`. transformers' XLM-RoBERTa is a verbatim copy of RoBERTa with other
class names and ``model_type = "xlm-roberta"``; its checkpoints also keep the trunk under
``roberta.``. Config names are BertConfig's, so no config mapping is needed. Neither tokenizer
returns token type ids (``token_types=False``; the type table has one row).
"""

from __future__ import annotations

from typing import Any

from bertzoo.family import Family
from bertzoo.hookspecs import hookimpl

HEADS = "bertzoo.heads"
OPTIONS = "bertzoo.heads.options"
COMPONENTS = {"embedding": "roberta", "layer": "bert", "pooler": "cls-tanh"}


def _family(model_type: str, prefix: str, what: str) -> Family:
    return Family(
        model_type=model_type,
        description=f"{what} (transformers' {prefix}Model and its {prefix}* heads)",
        base_prefix="roberta",  # XLM-R too: its checkpoints keep the trunk under roberta.
        trunk_architecture=f"{prefix}Model",
        components=COMPONENTS,
        token_types=False,
        positions_from_pad=True,  # positions pad + 1, pad + 2, ...: the longest input is max_pos - pad - 1
    )


ROBERTA = _family("roberta", "Roberta", "RoBERTa")
XLM_ROBERTA = _family("xlm-roberta", "XLMRoberta", "XLM-RoBERTa")

# head name → (target in bertzoo.heads, options model, transformers class suffix, main-job task)
_HEADS: dict[str, tuple[str, str | None, str, str | tuple[str, ...] | None]] = {
    "masked-lm": ("roberta:RobertaForMaskedLM", None, "ForMaskedLM", "fill-mask"),
    "causal-lm": ("roberta:RobertaForCausalLM", None, "ForCausalLM", None),
    "sequence-classification": ("roberta:RobertaForSequenceClassification", "SequenceClassificationOptions",
                                "ForSequenceClassification", ("classify", "rerank")),
    "multiple-choice": ("roberta:RobertaForMultipleChoice", None, "ForMultipleChoice", None),
    # same keys and math as BERT's
    "token-classification": ("classification:BertForTokenClassification", "TokenClassificationOptions",
                             "ForTokenClassification", "token-classify"),
    "question-answering": ("question_answering:BertForQuestionAnswering", "QuestionAnsweringOptions",
                           "ForQuestionAnswering", "answer"),
}
_DESCRIPTIONS = {
    "masked-lm": "masked LM: lm_head dense → erf GELU → layer_norm → decoder tied to the word embeddings",
    "causal-lm": "left-to-right LM with lm_head (shifted-label loss, KV cache)",
    "sequence-classification": "classifier.dense → tanh → classifier.out_proj on the first token (no pooler)",
    "multiple-choice": "one score per choice: pooler → dropout → classifier (1 output)",
    "token-classification": "one label per token (dropout → classifier)",
    "question-answering": "extractive QA: start and end logits per token (qa_outputs)",
}

_SHAPE = {"hidden_act": "gelu", "max_position_embeddings": 514, "type_vocab_size": 1, "layer_norm_eps": 1e-5,
          "pad_token_id": 1, "components": COMPONENTS}
_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
_LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096}
# name → (description, fields, source)
PRESETS: dict[str, tuple[str, dict[str, Any], str]] = {
    "roberta-base": ("RoBERTa-base (125M parameters)",
                     {"model_type": "roberta", "vocab_size": 50265, **_BASE},
                     "https://huggingface.co/FacebookAI/roberta-base/blob/main/config.json"),
    "roberta-large": ("RoBERTa-large (355M parameters)",
                      {"model_type": "roberta", "vocab_size": 50265, **_LARGE},
                      "https://huggingface.co/FacebookAI/roberta-large/blob/main/config.json"),
    "xlm-roberta-base": ("XLM-RoBERTa-base, 100 languages (278M parameters)",
                         {"model_type": "xlm-roberta", "vocab_size": 250002, **_BASE},
                         "https://huggingface.co/FacebookAI/xlm-roberta-base/blob/main/config.json"),
    "xlm-roberta-large": ("XLM-RoBERTa-large, 100 languages (560M parameters)",
                          {"model_type": "xlm-roberta", "vocab_size": 250002, **_LARGE},
                          "https://huggingface.co/FacebookAI/xlm-roberta-large/blob/main/config.json"),
}


@hookimpl
def bertzoo_register(registry: Any) -> None:
    registry.register(
        "embedding", "roberta", "bertzoo.plugins.roberta:RobertaEmbeddings",
        description="RoBERTa embeddings: BERT's with padding-aware positions (pad + 1, pad + 2, ...; pads get pad)",
    )
    for family, prefix in ((ROBERTA, "Roberta"), (XLM_ROBERTA, "XLMRoberta")):
        name = family.model_type
        registry.register("family", name, family, description=family.description)
        for head, (target, options, suffix, task) in _HEADS.items():
            extra: dict[str, Any] = {} if task is None else {"task": task}
            if options is not None:
                extra["options"] = f"{OPTIONS}:{options}"
            registry.register(
                "head", f"{name}.{head}", f"{HEADS}.{target}",
                description=f"{_DESCRIPTIONS[head]} ({prefix}{suffix})", hf_architecture=f"{prefix}{suffix}",
                family=name, **extra,
            )
    for name, (description, fields, source) in PRESETS.items():
        registry.register("preset", name, {"name": name, **_SHAPE, **fields}, description=description, source=source)
