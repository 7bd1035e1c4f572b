"""The plugin module bertzoo loads (entry point ``example`` in group ``bertzoo``).

Light on purpose: no torch here. Targets and options models are ``"module:attr"`` strings,
imported only when a model is built, so ``bertzoo list`` stays fast.
"""

from typing import Any

from bertzoo import hookimpl

bertzoo_plugin_api = ">=1,<2"  # the plugin API versions this plugin was written for
bertzoo_namespace = "example"  # full names are example:<name> (the default would be "example-plugin")


@hookimpl
def bertzoo_register(registry: Any) -> None:
    registry.register(
        "attention", "sliding-window", "bertzoo_example.attention:SlidingWindowAttention",
        description="local attention: each query sees keys within `window` positions (padding, causal, KV cache)",
        options="bertzoo_example.options:SlidingWindowOptions",
        capabilities={
            "devices": ("cpu", "cuda"),
            "dtypes": ("float32", "bfloat16", "float16", "float64"),
            "causal": True,
            "kv_cache": True,  # the window follows the cache offset
            "cross_attention": False,  # a window between two different sequences means nothing
            "returns_weights": False,
            "head_mask": False,
            "dropout": True,
            "varlen": False,
            "padded": True,
        },
        priority=-100,
        auto=False,  # never chosen by attention="auto": with a short window it changes the model's output
    )
    registry.register(
        "head", "mean-regression", "bertzoo_example.head:MeanRegressionHead",
        description="regression on the mean of the real tokens' hidden states; MSE loss",
        options="bertzoo_example.options:MeanRegressionOptions",
    )
    registry.register(
        "head", "max-mean", "bertzoo_example.embedding:MaxMeanEmbeddingHead",
        description="sentence vectors: max and mean of the real tokens' hidden states, concatenated (2 x hidden)",
        task="embed",  # serves bertzoo.embed / `bertzoo embed --head example:max-mean`
    )
