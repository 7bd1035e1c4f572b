"""HF's weight initialisation for an assembled model (``_init_weights``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


@torch.no_grad()
def init_weights(model: nn.Module, spec: Any) -> None:
    """HF ``_init_weights``: Linear/Embedding ~ N(0, std), biases 0, LayerNorm 1/0, padding row 0.

    ``std = spec.initializer_range or 0.02``. Embeddings are initialised last so a decoder tied
    to the word embeddings keeps its zero padding row. A module may define
    ``_init_bertzoo_weights(spec)`` for parameters of its own (e.g. an MLM bias = 0); it runs after.
    """
    std = spec.initializer_range or 0.02
    modules = list(model.modules())
    for module in modules:
        if isinstance(module, nn.Linear):
            module.weight.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.LayerNorm):
            if module.weight is not None:
                module.weight.fill_(1.0)
            if module.bias is not None:
                module.bias.zero_()
    for module in modules:
        if isinstance(module, nn.Embedding):
            module.weight.normal_(mean=0.0, std=std)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        positions, token_types = getattr(module, "position_ids", None), getattr(module, "token_type_ids", None)
        if isinstance(positions, Tensor):
            positions.copy_(torch.arange(positions.shape[-1]).expand_as(positions))
        if isinstance(token_types, Tensor):
            token_types.zero_()
    for module in modules:
        hook = getattr(module, "_init_bertzoo_weights", None)
        if callable(hook):
            hook(spec)
