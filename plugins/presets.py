"""Named BERT specs (presets): numbers only, each with the config.json it copies (``source``).

This module is light on purpose (no torch): ``bertzoo list`` reads presets without building.
"""

from __future__ import annotations

from typing import Any

from bertzoo.hookspecs import hookimpl

_BERT = {"hidden_act": "gelu", "max_position_embeddings": 512, "type_vocab_size": 2, "vocab_size": 30522}

# name: (description, the config.json it copies, spec data)
PRESETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "bert-tiny": ("BERT 2 layers, 128 hidden, 2 heads (Turc et al. 2019)", "https://huggingface.co/google/bert_uncased_L-2_H-128_A-2/blob/main/config.json",
                  {**_BERT, "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512}),
    "bert-mini": ("BERT 4 layers, 256 hidden, 4 heads", "https://huggingface.co/google/bert_uncased_L-4_H-256_A-4/blob/main/config.json",
                  {**_BERT, "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024}),
    "bert-small": ("BERT 4 layers, 512 hidden, 8 heads", "https://huggingface.co/google/bert_uncased_L-4_H-512_A-8/blob/main/config.json",
                   {**_BERT, "hidden_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8, "intermediate_size": 2048}),
    "bert-medium": ("BERT 8 layers, 512 hidden, 8 heads", "https://huggingface.co/google/bert_uncased_L-8_H-512_A-8/blob/main/config.json",
                    {**_BERT, "hidden_size": 512, "num_hidden_layers": 8, "num_attention_heads": 8, "intermediate_size": 2048}),
    "bert-base-uncased": ("BERT-base, uncased vocabulary (110M parameters)", "https://huggingface.co/google-bert/bert-base-uncased/blob/main/config.json",
                          {**_BERT, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}),
    "bert-base-cased": ("BERT-base, cased vocabulary", "https://huggingface.co/google-bert/bert-base-cased/blob/main/config.json",
                        {**_BERT, "vocab_size": 28996, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}),
    "bert-large-uncased": ("BERT-large, uncased vocabulary (340M parameters)", "https://huggingface.co/google-bert/bert-large-uncased/blob/main/config.json",
                           {**_BERT, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096}),
    "minilm-l6-h384": ("MiniLM 6 layers, 384 hidden, 12 heads (all-MiniLM-L6-v2's shape)", "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/blob/main/config.json",
                       {**_BERT, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536}),
    "minilm-l12-h384": ("MiniLM 12 layers, 384 hidden, 12 heads", "https://huggingface.co/sentence-transformers/all-MiniLM-L12-v2/blob/main/config.json",
                        {**_BERT, "hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 1536}),
}


@hookimpl
def bertzoo_register(registry: Any) -> None:
    for name, (description, source, spec) in PRESETS.items():
        registry.register("preset", name, {"name": name, **spec}, description=description, source=source,
                          family="bert")
