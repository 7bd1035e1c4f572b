"""Registers the MPNet family: embedding, layer, heads, preset.

Light on purpose (no torch): targets are ``"module:attr"`` strings. MPNet
(:mod:`bertzoo.plugins.mpnet`) is BERT's post-LN trunk with a relative position bias shared by
every layer, padding index 1 and no token types; its heads are RoBERTa's under MPNet's class names
(:mod:`bertzoo.heads.mpnet`). ``config.json`` uses BertConfig's names plus
``relative_attention_num_buckets`` (the embedding's option). The bias table's file key
``encoder.relative_attention_bias`` lives in the embedding (it makes the bias once per forward).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bertzoo.family import Family
from bertzoo.hookspecs import hookimpl


class MPNetEmbeddingOptions(BaseModel):
    """Options of the ``mpnet`` embedding (config.json's ``relative_attention_num_buckets``)."""

    model_config = ConfigDict(extra="forbid")

    relative_attention_num_buckets: int = Field(
        32, ge=32, description="rows of the relative position bias table (transformers uses the first 32)"
    )



COMPONENTS = {"embedding": "mpnet", "layer": "mpnet", "pooler": "cls-tanh"}


def spec_from_hf(config: Mapping[str, Any]) -> dict[str, Any]:
    """``MPNetConfig`` dict → spec fields; the bias table size goes to the embedding's options."""
    data = dict(config)
    data["type_vocab_size"] = 1  # MPNet has no token types
    buckets = config.get("relative_attention_num_buckets")
    if buckets is not None:
        data["components"] = {"embedding": {"name": "mpnet", "options": {"relative_attention_num_buckets": buckets}}}
    return data


def hf_from_spec(fields: dict[str, Any]) -> dict[str, Any]:
    """Spec fields (+ ``components``) → ``MPNetConfig`` entries."""
    comps = fields.pop("components", None) or {}
    fields.pop("type_vocab_size", None)
    embedding = comps.get("embedding")
    options = embedding.get("options", {}) if isinstance(embedding, Mapping) else {}
    fields["relative_attention_num_buckets"] = int(options.get("relative_attention_num_buckets", 32))
    return fields


MPNET = Family(
    model_type="mpnet",
    description="MPNet (transformers' MPNetModel and its MPNet* heads)",
    base_prefix="mpnet",
    trunk_architecture="MPNetModel",
    components=COMPONENTS,
    token_types=False,
    positions_from_pad=True,  # positions count from the ids (pad index 1), so max length = max_pos - 2
    key_renames=(("encoder.relative_attention_bias.", "embeddings.relative_attention_bias."),),
    spec_from_hf="bertzoo.plugins.register_mpnet:spec_from_hf",
    hf_from_spec="bertzoo.plugins.register_mpnet:hf_from_spec",
)

HEADS = "bertzoo.heads"
OPTIONS = "bertzoo.heads.options"
# head name → (target in bertzoo.heads, options model, main-job task, description)
_HEADS: dict[str, tuple[str, str | None, str | tuple[str, ...] | None, str]] = {
    "masked-lm": ("mpnet:MPNetForMaskedLM", None, "fill-mask",
                  "masked LM: lm_head dense → erf GELU → layer_norm → decoder tied to the word embeddings"),
    "sequence-classification": ("mpnet:MPNetForSequenceClassification", "SequenceClassificationOptions",
                                ("classify", "rerank"), "classifier.dense → tanh → classifier.out_proj on token 0"),
    "multiple-choice": ("mpnet:MPNetForMultipleChoice", None, None,
                        "one score per choice: pooler → dropout → classifier (1 output)"),
    "token-classification": ("classification:BertForTokenClassification", "TokenClassificationOptions",
                             "token-classify", "one label per token (dropout → classifier)"),
    "question-answering": ("question_answering:BertForQuestionAnswering", "QuestionAnsweringOptions", "answer",
                           "extractive QA: start and end logits per token (qa_outputs)"),
}
_SUFFIX = {"masked-lm": "ForMaskedLM", "sequence-classification": "ForSequenceClassification",
           "multiple-choice": "ForMultipleChoice", "token-classification": "ForTokenClassification",
           "question-answering": "ForQuestionAnswering"}


@hookimpl
def bertzoo_register(registry: Any) -> None:
    registry.register("family", "mpnet", MPNET, description=MPNET.description)
    registry.register(
        "embedding", "mpnet", "bertzoo.plugins.mpnet:MPNetEmbeddings",
        description="MPNet embeddings: word + padding-aware position (pad index 1), LayerNorm; owns the "
                    "relative position bias made once per forward",
        options="bertzoo.plugins.register_mpnet:MPNetEmbeddingOptions",
    )
    registry.register(
        "layer", "mpnet", "bertzoo.plugins.mpnet:MPNetLayer",
        description="post-LayerNorm MPNet block (attention.attn.q/k/v/o); the relative bias comes with the mask",
        supports_packed=True,
    )
    for head, (target, options, task, description) in _HEADS.items():
        extra: dict[str, Any] = {} if task is None else {"task": task}
        if options is not None:
            extra["options"] = f"{OPTIONS}:{options}"
        registry.register("head", f"mpnet.{head}", f"{HEADS}.{target}", description=f"{description} (MPNet)",
                          hf_architecture=f"MPNet{_SUFFIX[head]}", family="mpnet", **extra)
    registry.register(
        "preset", "mpnet-base",
        {"name": "mpnet-base", "model_type": "mpnet", "vocab_size": 30527, "hidden_size": 768,
         "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
         "max_position_embeddings": 514, "layer_norm_eps": 1e-5, "pad_token_id": 1, "type_vocab_size": 1,
         "components": COMPONENTS},
        description="MPNet-base (110M parameters; all-mpnet-base-v2's architecture)",
        source="https://huggingface.co/microsoft/mpnet-base/blob/main/config.json",
    )
