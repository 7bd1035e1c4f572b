"""Registers the eager reference components (``bertzoo:bert`` embedding and layer, ``bertzoo:eager``
attention, the poolers). Light on purpose: targets are strings, imported only when built."""

from __future__ import annotations

from typing import Any

from bertzoo.family import BERT_FAMILY
from bertzoo.hookspecs import hookimpl
from bertzoo.interfaces import AttentionCapabilities

EAGER = "bertzoo.plugins.eager"


# only what differs from AttentionCapabilities' defaults (padded, causal, cross-attention, cache, dropout)
EAGER_CAPABILITIES = AttentionCapabilities(
    devices=("cpu", "cuda", "mps"),
    dtypes=("float32", "bfloat16", "float16", "float64"),
    returns_weights=True,
    head_mask=True,
    position_bias=True,
    window=True,
)


@hookimpl
def bertzoo_register(registry: Any) -> None:
    registry.register("family", "bert", BERT_FAMILY, description=BERT_FAMILY.description)
    registry.register(
        "embedding", "bert", f"{EAGER}:BertEmbeddings",
        description="BERT embeddings: word + token type + absolute position, LayerNorm, dropout",
    )
    registry.register(
        "attention", "eager", f"{EAGER}:EagerAttention",
        description="reference attention: matmul, additive mask, softmax, dropout, matmul; returns weights",
        capabilities=EAGER_CAPABILITIES.as_dict(),
        priority=0,
    )
    registry.register(
        "layer", "bert", f"{EAGER}:BertLayer",
        description="post-LayerNorm BERT block: self-attention, optional cross-attention, feed-forward",
        supports_packed=True,  # runs packed (T, H) hidden states with a cu_seqlens mask
    )
    registry.register("pooler", "cls-tanh", f"{EAGER}:BertPooler",
                      description="BERT's pooler: tanh(dense(first token)); checkpoint key pooler.dense")
    registry.register("pooler", "mean", f"{EAGER}:MeanPooler", description="mean of real tokens (mask-aware)")
    registry.register("pooler", "cls", f"{EAGER}:ClsPooler", description="first token's hidden state")
    registry.register("pooler", "max", f"{EAGER}:MaxPooler", description="max over real tokens (mask-aware)")
