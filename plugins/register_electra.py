"""Registers the ELECTRA family: embedding, heads, presets and its config.json mapping.

Light on purpose (no torch): targets are ``"module:attr"`` strings, imported when built. The
trunk is BERT's (``bert`` layers, no pooler) with the ``electra`` embedding: E-wide tables plus
``embeddings_project`` (E → H) when ``embedding_size`` differs from ``hidden_size``
(:mod:`bertzoo.plugins.electra`). transformers keeps that projection at the trunk's top level
(``electra.embeddings_project.*``); ``key_renames`` maps it to the embedding's
``embeddings.embeddings_project.*``. Heads: :mod:`bertzoo.heads.electra`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bertzoo.family import Family
from bertzoo.hookspecs import hookimpl

HERE = "bertzoo.plugins.register_electra"
HEADS = "bertzoo.heads"
OPTIONS = "bertzoo.heads.options"
COMPONENTS: dict[str, str | None] = {"embedding": "electra", "layer": "bert", "pooler": None}
# ElectraConfig fields that are head options (multiple-choice's sequence summary), not spec fields
SUMMARY_FIELDS = ("summary_type", "summary_use_proj", "summary_activation", "summary_last_dropout")


def spec_from_hf(config: Mapping[str, Any]) -> dict[str, Any]:
    """Spec fields from an ELECTRA ``config.json``: BertConfig's names plus ``embedding_size``
    (ElectraConfig's default is 128, so a config without it means 128)."""
    fields = {k: v for k, v in config.items() if k not in SUMMARY_FIELDS}
    fields.setdefault("embedding_size", 128)
    return fields


def hf_from_spec(fields: Mapping[str, Any]) -> dict[str, Any]:
    """ELECTRA ``config.json`` entries: ``embedding_size`` is always written (E = H when the spec has None)."""
    config = dict(fields)
    if config.get("embedding_size") is None:
        config["embedding_size"] = config.get("hidden_size")
    return config


ELECTRA = Family(
    model_type="electra",
    description="ELECTRA (transformers' ElectraModel and its Electra* heads)",
    base_prefix="electra",
    trunk_architecture="ElectraModel",
    components=COMPONENTS,
    token_types=True,
    key_renames=(("embeddings_project.", "embeddings.embeddings_project."),),
    spec_from_hf=f"{HERE}:spec_from_hf",
    hf_from_spec=f"{HERE}:hf_from_spec",
)

# head name → (target in bertzoo.heads, options model, transformers class, main-job task, description)
_HEADS: dict[str, tuple[str, str | None, str, str | tuple[str, ...] | None, str]] = {
    "pretraining": ("electra:ElectraForPreTraining", None, "ElectraForPreTraining", None,
                    "replaced-token discriminator: dense → hidden_act → dense_prediction, BCE loss"),
    "masked-lm": ("electra:ElectraForMaskedLM", None, "ElectraForMaskedLM", "fill-mask",
                  "generator: dense (H → E) → GELU → LayerNorm → generator_lm_head tied to the word embeddings"),
    "causal-lm": ("electra:ElectraForCausalLM", None, "ElectraForCausalLM", None,
                  "left-to-right generator (shifted-label loss, KV cache)"),
    "sequence-classification": ("electra:ElectraForSequenceClassification",
                                f"{OPTIONS}:SequenceClassificationOptions", "ElectraForSequenceClassification",
                                ("classify", "rerank"),
                                "classifier.dense → GELU → classifier.out_proj on the first token"),
    "multiple-choice": ("electra:ElectraForMultipleChoice", "bertzoo.heads.electra_options:SequenceSummaryOptions",
                        "ElectraForMultipleChoice", None,
                        "one score per choice: sequence_summary (first token → Linear → GELU) → classifier"),
    "token-classification": ("classification:BertForTokenClassification", f"{OPTIONS}:TokenClassificationOptions",
                             "ElectraForTokenClassification", "token-classify",
                             "one label per token (dropout → classifier)"),
    "question-answering": ("question_answering:BertForQuestionAnswering", f"{OPTIONS}:QuestionAnsweringOptions",
                           "ElectraForQuestionAnswering", "answer",
                           "extractive QA: start and end logits per token (qa_outputs)"),
}

_SHAPE = {"model_type": "electra", "vocab_size": 30522, "hidden_act": "gelu", "max_position_embeddings": 512,
          "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0, "components": COMPONENTS}
_SMALL = {"hidden_size": 256, "num_hidden_layers": 12, "num_attention_heads": 4, "intermediate_size": 1024}
# name → (description, fields, source)
PRESETS: dict[str, tuple[str, dict[str, Any], str]] = {
    "electra-small-discriminator": (
        "ELECTRA-small discriminator (14M parameters, E 128 → H 256)", {"embedding_size": 128, **_SMALL},
        "https://huggingface.co/google/electra-small-discriminator/blob/main/config.json"),
    "electra-base-discriminator": (
        "ELECTRA-base discriminator (110M parameters)",
        {"embedding_size": 768, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
         "intermediate_size": 3072},
        "https://huggingface.co/google/electra-base-discriminator/blob/main/config.json"),
    "electra-large-discriminator": (
        "ELECTRA-large discriminator (335M parameters)",
        {"embedding_size": 1024, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
         "intermediate_size": 4096},
        "https://huggingface.co/google/electra-large-discriminator/blob/main/config.json"),
    "electra-small-generator": (
        "ELECTRA-small generator (masked-LM, 14M parameters, E 128 → H 256)", {"embedding_size": 128, **_SMALL},
        "https://huggingface.co/google/electra-small-generator/blob/main/config.json"),
}


@hookimpl
def bertzoo_register(registry: Any) -> None:
    registry.register("family", "electra", ELECTRA, description=ELECTRA.description)
    registry.register(
        "embedding", "electra", "bertzoo.plugins.electra:ElectraEmbeddings",
        description="ELECTRA embeddings: BERT's at width embedding_size, then embeddings_project (E → H) when E ≠ H",
    )
    for name, (target, options, architecture, task, description) in _HEADS.items():
        extra: dict[str, Any] = {} if task is None else {"task": task}
        if options is not None:
            extra["options"] = options
        registry.register(
            "head", f"electra.{name}", f"{HEADS}.{target}",
            description=f"{description} ({architecture})", hf_architecture=architecture, family="electra", **extra,
        )
    for name, (description, fields, source) in PRESETS.items():
        registry.register("preset", name, {"name": name, **_SHAPE, **fields}, description=description, source=source)
