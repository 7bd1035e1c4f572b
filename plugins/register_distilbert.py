"""Registers the DistilBERT family: its embedding, layer, heads, presets and config.json mapping.

Light on purpose (no torch): targets are ``"module:attr"`` strings, imported when built. The
trunk is bertzoo's BertModel with the ``distilbert`` embedding and layer and no pooler; file keys
``transformer.layer.N.*`` are the trunk's ``encoder.layer.N.*`` (``key_renames``). DistilBertConfig
has its own field names (``dim``, ``n_heads``, ...); :func:`spec_from_hf` / :func:`hf_from_spec`
map them, with DistilBertConfig's defaults for missing entries; ``sinusoidal_pos_embds`` is the
``distilbert`` embedding's ``sinusoidal`` option.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bertzoo.family import Family
from bertzoo.hookspecs import hookimpl

HERE = "bertzoo.plugins.register_distilbert"
HEADS = "bertzoo.heads.distilbert"

# DistilBertConfig name → spec field, and DistilBertConfig's default
_NAMES: dict[str, tuple[str, Any]] = {
    "dim": ("hidden_size", 768),
    "n_heads": ("num_attention_heads", 12),
    "n_layers": ("num_hidden_layers", 6),
    "hidden_dim": ("intermediate_size", 3072),
    "activation": ("hidden_act", "gelu"),
    "dropout": ("hidden_dropout_prob", 0.1),
    "attention_dropout": ("attention_probs_dropout_prob", 0.1),
}
_SHARED_DEFAULTS: dict[str, Any] = {"vocab_size": 30522, "max_position_embeddings": 512, "pad_token_id": 0}
# spec fields DistilBertConfig has no place for (fixed in the modules, or BERT-only)
_NOT_IN_CONFIG = ("layer_norm_eps", "type_vocab_size", "is_decoder", "add_cross_attention", "use_cache",
                  "classifier_dropout", "embedding_size", "num_hidden_groups", "inner_group_num")
EPS = 1e-12  # every DistilBERT LayerNorm (plugins/distilbert.py)


def spec_from_hf(config: Mapping[str, Any]) -> dict[str, Any]:
    """Spec fields from a DistilBERT ``config.json`` dict."""
    fields = {k: v for k, v in config.items() if k not in _NAMES}
    for hf_name, (field, default) in _NAMES.items():
        fields[field] = config.get(hf_name, default)
    for key, default in _SHARED_DEFAULTS.items():
        fields.setdefault(key, default)
    fields["layer_norm_eps"] = EPS
    if config.get("sinusoidal_pos_embds"):  # an embedding option (it only changes fresh initialisation)
        fields["components"] = {"embedding": {"name": "distilbert", "options": {"sinusoidal": True}}}
    return fields


def hf_from_spec(fields: Mapping[str, Any]) -> dict[str, Any]:
    """DistilBERT ``config.json`` entries from spec fields (other entries, e.g. head keys, pass through)."""
    renamed = {field: hf_name for hf_name, (field, _default) in _NAMES.items()}
    config = {renamed.get(k, k): v for k, v in fields.items() if k not in (*_NOT_IN_CONFIG, "components")}
    embedding = (fields.get("components") or {}).get("embedding") or {}
    config["sinusoidal_pos_embds"] = bool((embedding.get("options") or {}).get("sinusoidal", False))
    return config


DISTILBERT = Family(
    model_type="distilbert",
    description="DistilBERT (transformers' DistilBertModel and its DistilBert* heads)",
    base_prefix="distilbert",
    trunk_architecture="DistilBertModel",
    components={"embedding": "distilbert", "layer": "distilbert", "pooler": None},
    token_types=False,
    key_renames=(("transformer.", "encoder."),),
    spec_from_hf=f"{HERE}:spec_from_hf",
    hf_from_spec=f"{HERE}:hf_from_spec",
)

# head name → (class, options model, transformers class, main-job task)
_HEADS: dict[str, tuple[str, str | None, str, str | tuple[str, ...] | None]] = {
    "masked-lm": ("DistilBertForMaskedLM", None, "DistilBertForMaskedLM", "fill-mask"),
    "sequence-classification": ("DistilBertForSequenceClassification", "DistilBertSequenceClassificationOptions",
                                "DistilBertForSequenceClassification", ("classify", "rerank")),
    "multiple-choice": ("DistilBertForMultipleChoice", "DistilBertMultipleChoiceOptions",
                        "DistilBertForMultipleChoice", None),
    "token-classification": ("DistilBertForTokenClassification", "bertzoo.heads.options:TokenClassificationOptions",
                             "DistilBertForTokenClassification", "token-classify"),
    "question-answering": ("DistilBertForQuestionAnswering", "DistilBertQuestionAnsweringOptions",
                           "DistilBertForQuestionAnswering", "answer"),
}

_BASE = {"model_type": "distilbert", "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 6,
         "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu", "max_position_embeddings": 512,
         "layer_norm_eps": EPS, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
         "components": {"embedding": "distilbert", "layer": "distilbert", "pooler": None}}
PRESETS: dict[str, tuple[str, dict[str, Any], str]] = {
    "distilbert-base-uncased": (
        "DistilBERT-base, uncased vocabulary (66M parameters)", {},
        "https://huggingface.co/distilbert/distilbert-base-uncased/blob/main/config.json"),
    "distilbert-base-cased": (
        "DistilBERT-base, cased vocabulary", {"vocab_size": 28996},
        "https://huggingface.co/distilbert/distilbert-base-cased/blob/main/config.json"),
    "distilbert-base-multilingual-cased": (
        "DistilBERT-base, multilingual cased vocabulary (104 languages)", {"vocab_size": 119547},
        "https://huggingface.co/distilbert/distilbert-base-multilingual-cased/blob/main/config.json"),
}


@hookimpl
def bertzoo_register(registry: Any) -> None:
    registry.register("family", "distilbert", DISTILBERT, description=DISTILBERT.description)
    registry.register(
        "embedding", "distilbert", "bertzoo.plugins.distilbert:DistilBertEmbeddings",
        description="DistilBERT embeddings: word + absolute position, LayerNorm (eps 1e-12), dropout; no token types",
        options="bertzoo.plugins.distilbert:DistilBertEmbeddingOptions",
    )
    registry.register(
        "layer", "distilbert", "bertzoo.plugins.distilbert:DistilBertLayer",
        description="DistilBERT block: q_lin/k_lin/v_lin/out_lin, sa_layer_norm, ffn.lin1/lin2, output_layer_norm",
        supports_packed=True,
    )
    for name, (cls, options, architecture, task) in _HEADS.items():
        extra = {} if task is None else {"task": task}
        if options is not None:
            extra["options"] = options if ":" in options else f"{HEADS}:{options}"
        registry.register(
            "head", f"distilbert.{name}", f"{HEADS}:{cls}",
            description=f"{name} as transformers' {architecture}", hf_architecture=architecture,
            family="distilbert", **extra,
        )
    for name, (description, sizes, source) in PRESETS.items():
        registry.register("preset", name, {"name": name, **_BASE, **sizes}, description=description, source=source)
