"""Registers the ALBERT family: its embedding, layer, pooler, heads, presets and config.json mapping.

Light on purpose (no torch): targets are ``"module:attr"`` strings, imported when built. The
trunk is bertzoo's BertModel with the ``albert`` embedding (E-wide, owning the E → H mapping),
layer and pooler. File keys and the trunk's differ in two places, both mapped by the family:
``encoder.albert_layer_groups.G.albert_layers.K`` is the trunk's ``encoder.layer.{G·inner+K}``
(``grouped_layers``), and ``encoder.embedding_hidden_mapping_in`` lives in the embedding
(``key_renames``). AlbertConfig uses BertConfig's names except ``classifier_dropout_prob``;
its defaults (albert-xxlarge) fill entries a config.json leaves out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bertzoo.family import Family
from bertzoo.hookspecs import hookimpl

HERE = "bertzoo.plugins.register_albert"
HEADS = "bertzoo.heads.albert"
OPTIONS = "bertzoo.heads.options"

# AlbertConfig's defaults (albert-xxlarge), where a spec's default differs or the field is ALBERT's own
_DEFAULTS: dict[str, Any] = {
    "vocab_size": 30000, "embedding_size": 128, "hidden_size": 4096, "num_hidden_layers": 12,
    "num_hidden_groups": 1, "num_attention_heads": 64, "intermediate_size": 16384, "inner_group_num": 1,
    "hidden_act": "gelu_new", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
    "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0,
}
_NOT_IN_CONFIG = ("is_decoder", "add_cross_attention", "use_cache")


def spec_from_hf(config: Mapping[str, Any]) -> dict[str, Any]:
    """Spec fields from an ALBERT ``config.json`` dict."""
    fields = {**_DEFAULTS, **{k: v for k, v in config.items() if k != "classifier_dropout_prob"}}
    fields["classifier_dropout"] = config.get("classifier_dropout_prob", 0.1)
    return fields


def hf_from_spec(fields: Mapping[str, Any]) -> dict[str, Any]:
    """ALBERT ``config.json`` entries from spec fields (other entries, e.g. head keys, pass through)."""
    config = {k: v for k, v in fields.items() if k not in _NOT_IN_CONFIG and k != "classifier_dropout"}
    config["classifier_dropout_prob"] = fields.get("classifier_dropout")
    if config.get("embedding_size") is None:
        config["embedding_size"] = fields["hidden_size"]
    if config.get("num_hidden_groups") is None:  # no sharing: each layer its own group
        config["num_hidden_groups"] = fields["num_hidden_layers"]
    config.setdefault("inner_group_num", 1)
    return config


ALBERT = Family(
    model_type="albert",
    description="ALBERT (transformers' AlbertModel and its Albert* heads; shared layers)",
    base_prefix="albert",
    trunk_architecture="AlbertModel",
    components={"embedding": "albert", "layer": "albert", "pooler": "albert"},
    # The model has a token-type table, but transformers' AlbertTokenizer returns no token_type_ids
    # (model_input_names), so pairs run with type 0 throughout; the main job does the same.
    token_types=False,
    key_renames=(("encoder.embedding_hidden_mapping_in.", "embeddings.embedding_hidden_mapping_in."),),
    grouped_layers=True,
    spec_from_hf=f"{HERE}:spec_from_hf",
    hf_from_spec=f"{HERE}:hf_from_spec",
)

# head name → (class, options model, main-job task); the transformers class has the same name
_HEADS: dict[str, tuple[str, str | None, str | tuple[str, ...] | None]] = {
    "masked-lm": ("AlbertForMaskedLM", None, "fill-mask"),
    "pretraining": ("AlbertForPreTraining", None, "fill-mask"),
    "sequence-classification": ("AlbertForSequenceClassification", "SequenceClassificationOptions",
                                ("classify", "rerank")),
    "multiple-choice": ("AlbertForMultipleChoice", None, None),
    "token-classification": ("AlbertForTokenClassification", "TokenClassificationOptions", "token-classify"),
    "question-answering": ("AlbertForQuestionAnswering", "QuestionAnsweringOptions", "answer"),
}

_BASE = {**_DEFAULTS, "model_type": "albert", "classifier_dropout": 0.1,
         "components": {"embedding": "albert", "layer": "albert", "pooler": "albert"}}
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "albert-base-v2": ("ALBERT-base v2: 12 shared layers, 768 hidden, E 128 (11M parameters)",
                       {"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072}),
    "albert-large-v2": ("ALBERT-large v2: 24 shared layers, 1024 hidden, E 128 (17M parameters)",
                        {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                         "intermediate_size": 4096}),
    "albert-xlarge-v2": ("ALBERT-xlarge v2: 24 shared layers, 2048 hidden, E 128 (58M parameters)",
                         {"hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 16,
                          "intermediate_size": 8192}),
    "albert-xxlarge-v2": ("ALBERT-xxlarge v2: 12 shared layers, 4096 hidden, E 128 (223M parameters)", {}),
}


@hookimpl
def bertzoo_register(registry: Any) -> None:
    registry.register("family", "albert", ALBERT, description=ALBERT.description)
    registry.register(
        "embedding", "albert", "bertzoo.plugins.albert:AlbertEmbeddings",
        description="ALBERT embeddings: BERT's at width E (embedding_size), then embedding_hidden_mapping_in E -> H",
    )
    registry.register(
        "layer", "albert", "bertzoo.plugins.albert:AlbertLayer",
        description="ALBERT block: attention.{query,key,value,dense,LayerNorm}, ffn, ffn_output, full_layer_layer_norm",
        supports_packed=True,
    )
    registry.register("pooler", "albert", "bertzoo.plugins.albert:AlbertPooler",
                      description="ALBERT's pooler: tanh(Linear(first token)); checkpoint keys pooler.weight/bias")
    for name, (cls, options, task) in _HEADS.items():
        extra: dict[str, Any] = {} if task is None else {"task": task}
        if options is not None:
            extra["options"] = f"{OPTIONS}:{options}"
        registry.register(
            "head", f"albert.{name}", f"{HEADS}:{cls}",
            description=f"{name} as transformers' {cls}", hf_architecture=cls, family="albert", **extra,
        )
    for name, (description, sizes) in PRESETS.items():
        registry.register(
            "preset", name, {"name": name, **_BASE, **sizes}, description=description,
            source=f"https://huggingface.co/albert/{name}/blob/main/config.json",
        )
