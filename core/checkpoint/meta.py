"""Loading into a model built on the meta device: a cold start with no random init and no second copy.

``from_pretrained`` builds the model under ``torch.device("meta")`` inside :func:`no_torch_init`,
then :func:`assign_state` makes the file's tensors the model's parameters and allocates (and
initialises, through the caller's ``initialize``) only what the file lacks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

# the torch.nn.init functions module constructors call
_INIT_FUNCTIONS = ("normal_", "uniform_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
                   "trunc_normal_", "constant_", "zeros_", "ones_", "orthogonal_")


@contextlib.contextmanager
def no_torch_init() -> Iterator[None]:
    """``torch.nn.init`` functions as no-ops while modules are constructed on the meta device.

    A meta tensor's ``normal_`` runs through torch's Python reference kernels, whose first use
    imports ``torch._dynamo`` (about 1.4 s and 70 MB): ``nn.Embedding`` calls it in its
    constructor. Nothing is lost, the weights come from the checkpoint (transformers'
    ``no_init_weights`` does the same).
    """
    saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS if hasattr(nn.init, name)}

    def skip(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return tensor

    for name in saved:
        setattr(nn.init, name, skip)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)


class ModuleSet(nn.Module):
    """A view whose ``modules()`` is exactly the given modules (not their children), for ``init_weights``."""

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        self._only = modules

    def modules(self) -> Iterator[nn.Module]:  # type: ignore[override]
        return iter(self._only)


def assign_state(
    model: nn.Module,
    to_load: Mapping[str, torch.Tensor],
    initialize: Callable[[nn.Module], None],
    device: str = "cpu",
) -> None:
    """Load into a model built on the meta device.

    1. Modules holding a tensor the file does not give (new head keys, non-persistent buffers such
       as ``position_ids``) get real storage for their meta tensors, then ``initialize(view)``
       runs on a :class:`ModuleSet` of exactly those modules (HF's initialisation rules);
    2. then every loaded name gets the file's tensor (cast to the model's dtype), one Parameter per
       tied group, so ties survive.

    Args:
        to_load: model name → file tensor, as :func:`bertzoo.checkpoint.keys.plan_load` returns.
        initialize: initialises the modules given (e.g. ``lambda m: init_weights(m, spec)``).
    """
    loaded = set(to_load)
    owners: dict[int, nn.Module] = {}
    for qualified, module in model.named_modules():
        prefix = f"{qualified}." if qualified else ""
        local = {**module._parameters, **module._buffers}
        if any(t is not None and t.is_meta and prefix + n not in loaded for n, t in local.items()):
            owners[id(module)] = module
    fresh: dict[int, torch.Tensor] = {}  # meta tensor id -> its replacement (tied tensors stay tied)
    for module in owners.values():
        for table in (module._parameters, module._buffers):
            for n, t in list(table.items()):
                if t is None or not t.is_meta:
                    continue
                if id(t) not in fresh:
                    empty = torch.empty_like(t, device=device)
                    fresh[id(t)] = nn.Parameter(empty, requires_grad=t.requires_grad) if isinstance(
                        t, nn.Parameter) else empty
                table[n] = fresh[id(t)]  # type: ignore[assignment]
    if owners:
        initialize(ModuleSet(list(owners.values())))
    current = model.state_dict(keep_vars=True)
    made: dict[int, torch.Tensor] = {}  # file tensor id -> the Parameter made from it
    for name, value in to_load.items():
        old = current[name]
        if id(value) not in made:
            data = value.to(device=device, dtype=old.dtype)
            made[id(value)] = nn.Parameter(data, requires_grad=old.requires_grad) if isinstance(
                old, nn.Parameter) else data
        module_name, _, attr = name.rpartition(".")
        module = model.get_submodule(module_name)
        table = module._parameters if attr in module._parameters else module._buffers
        table[attr] = made[id(value)]  # type: ignore[assignment]


__all__ = ["ModuleSet", "assign_state", "no_torch_init"]
