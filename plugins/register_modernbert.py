"""Registers the ModernBERT family: embedding, layer, heads, presets, and its options models.

Light on purpose (pydantic, no torch): targets are ``"module:attr"`` strings and the options models
below are what the registry loads when a spec is validated. The modules are in
:mod:`bertzoo.plugins.modernbert` and :mod:`bertzoo.heads.modernbert`.

ModernBERT's ``config.json`` (``ModernBertConfig``) maps onto bertzoo in three places:
spec fields under BertConfig's names (``norm_eps`` → ``layer_norm_eps``, ``hidden_activation`` →
``hidden_act``, ``attention_dropout`` → ``attention_probs_dropout_prob``); the layer's and the
embedding's options (window, global layers, rotary bases, biases); the heads' options
(``classifier_pooling``, prediction-head activation and biases, ``decoder_bias``, sparse MLM).
Checkpoint keys: the trunk is ``model.`` in head files and unprefixed in trunk files, with
``layers.N`` for the trunk's ``encoder.layer.N`` and ``final_norm`` as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bertzoo.family import Family
from bertzoo.heads.options import (
    QuestionAnsweringOptions,
    SequenceClassificationOptions,
    TokenClassificationOptions,
)
from bertzoo.hookspecs import hookimpl

LayerType = Literal["full_attention", "sliding_attention"]
Pooling = Literal["cls", "mean"]


# -- options (config.json names) ----------------------------------------------------------------------
class ModernBertEmbeddingOptions(BaseModel):
    """Options of the ``modernbert`` embedding (config.json's ``norm_bias``, ``embedding_dropout``)."""

    model_config = ConfigDict(extra="forbid")

    norm_bias: bool = Field(False, description="the LayerNorm has a bias")
    embedding_dropout: float = Field(0.0, ge=0.0, le=1.0, description="dropout after the norm")


class ModernBertLayerOptions(BaseModel):
    """Options of the ``modernbert`` layer: config.json's names; per-layer values derive from them."""

    model_config = ConfigDict(extra="forbid")

    local_attention: int = Field(128, gt=0, description="total local window: a local query sees ±local_attention//2")
    global_attn_every_n_layers: int = Field(3, gt=0, description="layer i is global iff i % n == 0 (no layer_types)")
    layer_types: list[LayerType] | None = Field(None, description="per layer: full_attention or sliding_attention")
    global_rope_theta: float = Field(160000.0, gt=0.0, description="rotary base of global layers")
    local_rope_theta: float = Field(10000.0, gt=0.0, description="rotary base of local layers")
    norm_bias: bool = Field(False, description="the LayerNorms have biases")
    attention_bias: bool = Field(False, description="Wqkv and attention Wo have biases")
    mlp_bias: bool = Field(False, description="Wi and mlp Wo have biases")
    mlp_dropout: float = Field(0.0, ge=0.0, le=1.0, description="dropout inside the MLP")


class PredictionHeadOptions(BaseModel):
    """The shared prediction ``head`` (dense → activation → norm) of every ModernBERT head."""

    model_config = ConfigDict(extra="forbid")

    classifier_activation: str = Field("gelu", description="activation after head.dense")
    classifier_bias: bool = Field(False, description="head.dense has a bias")
    norm_bias: bool = Field(False, description="head.norm has a bias")


class MaskedLMOptions(PredictionHeadOptions):
    decoder_bias: bool = Field(True, description="the decoder has its own (saved) bias")
    sparse_prediction: bool = Field(False, description="with labels, predict only the labelled positions")
    sparse_pred_ignore_index: int = Field(-100, description="the label that marks positions to skip")


class SequenceClassificationOptionsMB(PredictionHeadOptions, SequenceClassificationOptions):
    classifier_pooling: Pooling = Field("cls", description="first token or mean of real tokens")


class MultipleChoiceOptions(PredictionHeadOptions):
    classifier_pooling: Pooling = Field("cls", description="first real token or mean of real tokens")


class TokenClassificationOptionsMB(PredictionHeadOptions, TokenClassificationOptions):
    pass


class QuestionAnsweringOptionsMB(PredictionHeadOptions, QuestionAnsweringOptions):
    pass


# -- config.json <-> spec -------------------------------------------------------------------------------
_SPEC_NAMES = {"norm_eps": "layer_norm_eps", "hidden_activation": "hidden_act",
               "attention_dropout": "attention_probs_dropout_prob"}
_LAYER_KEYS = tuple(ModernBertLayerOptions.model_fields)
_EMBEDDING_KEYS = tuple(ModernBertEmbeddingOptions.model_fields)


def _rope_theta(config: Mapping[str, Any], layer: str, legacy: str) -> float | None:
    params = config.get("rope_parameters")
    if isinstance(params, Mapping) and isinstance(params.get(layer), Mapping) and "rope_theta" in params[layer]:
        return float(params[layer]["rope_theta"])
    return float(config[legacy]) if config.get(legacy) is not None else None


def spec_from_hf(config: Mapping[str, Any]) -> dict[str, Any]:
    """``ModernBertConfig`` dict → spec fields, with the layer and embedding options under ``components``."""
    data = {k: v for k, v in config.items() if k not in _SPEC_NAMES and k != "layer_norm_eps"}
    for theirs, ours in _SPEC_NAMES.items():
        if theirs in config:
            data[ours] = config[theirs]
    data.setdefault("layer_norm_eps", 1e-5)
    data.setdefault("hidden_act", "gelu")
    data["hidden_dropout_prob"] = 0.0  # ModernBERT's dropouts are the options below
    data["type_vocab_size"] = 1
    layer = {k: config[k] for k in _LAYER_KEYS if config.get(k) is not None}
    for name, layer_name, legacy in (("global_rope_theta", "full_attention", "global_rope_theta"),
                                     ("local_rope_theta", "sliding_attention", "local_rope_theta")):
        theta = _rope_theta(config, layer_name, legacy)
        if theta is not None:
            layer[name] = theta
    embedding = {k: config[k] for k in _EMBEDDING_KEYS if config.get(k) is not None}
    data["components"] = {"layer": {"name": "modernbert", "options": layer},
                          "embedding": {"name": "modernbert", "options": embedding}}
    return data


def hf_from_spec(fields: dict[str, Any]) -> dict[str, Any]:
    """Spec fields (+ ``components``) → ``ModernBertConfig`` entries."""
    comps = fields.pop("components", None) or {}
    out = {k: v for k, v in fields.items() if k not in _SPEC_NAMES.values() and k != "type_vocab_size"}
    for theirs, ours in _SPEC_NAMES.items():
        if ours in fields:
            out[theirs] = fields[ours]
    out.pop("hidden_dropout_prob", None)
    if out.get("classifier_dropout") is None:
        out["classifier_dropout"] = 0.0  # ModernBertConfig's default; None is not a rate there
    for kind, model in (("layer", ModernBertLayerOptions), ("embedding", ModernBertEmbeddingOptions)):
        choice = comps.get(kind)
        options = choice.get("options", {}) if isinstance(choice, Mapping) else {}
        values = model.model_validate(options).model_dump()
        if kind == "layer":
            n = int(out.get("num_hidden_layers", 0))
            every = values.pop("global_attn_every_n_layers")
            values["layer_types"] = values["layer_types"] or [
                "sliding_attention" if i % every else "full_attention" for i in range(n)]
            values["rope_parameters"] = {
                "full_attention": {"rope_type": "default", "rope_theta": values.pop("global_rope_theta")},
                "sliding_attention": {"rope_type": "default", "rope_theta": values.pop("local_rope_theta")},
            }
        out.update(values)
    return out


MODERNBERT = Family(
    model_type="modernbert",
    description="ModernBERT (transformers' ModernBertModel and its ModernBert* heads)",
    base_prefix="model",
    trunk_architecture="ModernBertModel",
    components={"embedding": "modernbert", "layer": "modernbert", "pooler": None},
    token_types=False,
    key_renames=(("layers.", "encoder.layer."), ("final_norm.", "final_norm.")),
    spec_from_hf="bertzoo.plugins.register_modernbert:spec_from_hf",
    hf_from_spec="bertzoo.plugins.register_modernbert:hf_from_spec",
)

_OPTIONS = "bertzoo.plugins.register_modernbert"
# head name → (class in bertzoo.heads.modernbert, options model, main-job task, description)
_HEADS: dict[str, tuple[str, str, str | tuple[str, ...] | None, str]] = {
    "masked-lm": ("ModernBertForMaskedLM", "MaskedLMOptions", "fill-mask",
                  "masked LM: head (dense → act → norm) → decoder tied to tok_embeddings, own saved bias"),
    "sequence-classification": ("ModernBertForSequenceClassification", "SequenceClassificationOptionsMB",
                                ("classify", "rerank"), "cls or mean pooling → head → dropout → classifier"),
    "multiple-choice": ("ModernBertForMultipleChoice", "MultipleChoiceOptions", None,
                        "one score per choice: first real token (or mean) → head → classifier (1 output)"),
    "token-classification": ("ModernBertForTokenClassification", "TokenClassificationOptionsMB", "token-classify",
                             "one label per token: head → dropout → classifier"),
    "question-answering": ("ModernBertForQuestionAnswering", "QuestionAnsweringOptionsMB", "answer",
                           "extractive QA: head → dropout → classifier (start, end)"),
}

_SHAPE = {"model_type": "modernbert", "hidden_act": "gelu", "layer_norm_eps": 1e-5, "max_position_embeddings": 8192,
          "vocab_size": 50368, "pad_token_id": 50283, "type_vocab_size": 1, "hidden_dropout_prob": 0.0,
          "attention_probs_dropout_prob": 0.0}
_LAYER = {"local_attention": 128, "global_attn_every_n_layers": 3, "global_rope_theta": 160000.0,
          "local_rope_theta": 10000.0}
PRESETS: dict[str, tuple[str, dict[str, Any], str]] = {
    "modernbert-base": ("ModernBERT-base (149M parameters, 8192 tokens)",
                        {"hidden_size": 768, "num_hidden_layers": 22, "num_attention_heads": 12,
                         "intermediate_size": 1152},
                        "https://huggingface.co/answerdotai/ModernBERT-base/blob/main/config.json"),
    "modernbert-large": ("ModernBERT-large (395M parameters, 8192 tokens)",
                         {"hidden_size": 1024, "num_hidden_layers": 28, "num_attention_heads": 16,
                          "intermediate_size": 2624},
                         "https://huggingface.co/answerdotai/ModernBERT-large/blob/main/config.json"),
}


@hookimpl
def bertzoo_register(registry: Any) -> None:
    registry.register("family", "modernbert", MODERNBERT, description=MODERNBERT.description)
    registry.register(
        "embedding", "modernbert", "bertzoo.plugins.modernbert:ModernBertEmbeddings",
        description="ModernBERT embeddings: tok_embeddings → LayerNorm (no bias) → dropout; rotary positions",
        options=f"{_OPTIONS}:ModernBertEmbeddingOptions",
    )
    registry.register(
        "layer", "modernbert", "bertzoo.plugins.modernbert:ModernBertLayer",
        description="pre-LayerNorm ModernBERT block: fused Wqkv, RoPE, global/local attention, GeGLU; final_norm",
        options=f"{_OPTIONS}:ModernBertLayerOptions", supports_packed=True,
    )
    for head, (cls, options, task, description) in _HEADS.items():
        extra: dict[str, Any] = {} if task is None else {"task": task}
        registry.register(
            "head", f"modernbert.{head}", f"bertzoo.heads.modernbert:{cls}", description=description,
            options=f"{_OPTIONS}:{options}", hf_architecture=cls, family="modernbert", **extra,
        )
    for name, (description, fields, source) in PRESETS.items():
        data = {"name": name, **_SHAPE, **fields,
                "components": {"layer": {"name": "modernbert", "options": _LAYER}, "embedding": "modernbert",
                               "pooler": None}}
        registry.register("preset", name, data, description=description, source=source)
