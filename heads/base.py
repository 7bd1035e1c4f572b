"""What every head shares: the trunk call, the small head contract, and label checks.

A head is built as ``HeadClass(bert, spec, **options)``. It owns the trunk as ``self.bert`` and
its own modules under HF's top-level names (``cls``, ``classifier``, ``qa_outputs``), so its
``state_dict`` keys are HF's. Class attributes tell the factory and the checkpoint code what
they need to know (timm's ``PretrainedCfg.classifier`` idea):

- ``uses_pooler``: whether the trunk keeps ``pooler.dense`` (HF's ``add_pooling_layer``).
- ``classifier_keys``: the task-specific keys that are re-initialised when ``num_labels`` changes.
- ``options_model``: the pydantic model validating the head's options (None = no options).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ValidationError
from torch import Tensor, nn

from bertzoo.checkpoint import PretrainedMixin
from bertzoo.errors import InputError, SpecError

IGNORE_INDEX = -100  # labels with this value do not count in the loss (CrossEntropyLoss default)


class BertHead(PretrainedMixin, nn.Module):
    """Base of the built-in heads. Subclasses set the class attributes and write ``forward``."""

    uses_pooler: ClassVar[bool] = True
    classifier_keys: ClassVar[tuple[str, ...]] = ()
    options_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__()
        self.bert = bert
        self.spec = spec
        self.options = self.validate_options(options)

    # -- options ------------------------------------------------------------------------------
    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> BaseModel | None:
        """Options as the typed model (the factory hands them over as plain JSON data).

        Raises:
            SpecError: an unknown option or an invalid value.
        """
        if cls.options_model is None:
            if options:
                raise SpecError(f"head {cls.__name__} takes no options, got {', '.join(sorted(options))}")
            return None
        try:
            return cls.options_model.model_validate(dict(options))
        except ValidationError as exc:
            from bertzoo.spec import format_validation_error

            raise SpecError(format_validation_error(exc, f"{cls.__name__} options", prefix="components.head.options")) from None

    def head_options(self) -> dict[str, Any]:
        """The head's current options as JSON data (what ``save_pretrained`` writes back)."""
        return {} if self.options is None else self.options.model_dump(mode="json")

    @classmethod
    def options_from_hf_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """Head options read from a HF ``config.json`` dict (default: none)."""
        return {}

    @classmethod
    def hf_config_from_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``config.json`` entries that carry the head's options (default: none)."""
        return {}

    # -- the trunk call -----------------------------------------------------------------------
    def run_bert(self, **kwargs: Any) -> Any:
        """Call the trunk with ``return_dict=True``; ``None`` arguments are left to its defaults."""
        kwargs["return_dict"] = True
        return self.bert(**{k: v for k, v in kwargs.items() if v is not None or k == "input_ids"})


def classifier_dropout(spec: Any) -> float:
    """``classifier_dropout``, or ``hidden_dropout_prob`` when it is None (HF's fallback)."""
    return spec.classifier_dropout if spec.classifier_dropout is not None else spec.hidden_dropout_prob


def finish(output: Any, return_dict: bool | None) -> Any:
    """``return_dict=False`` → HF's tuple (non-None fields in field order)."""
    return output if return_dict is None or return_dict else output.to_tuple()


# -- activations (HF's ACT2FN names accepted by the spec) -------------------------------------------
def _gelu_fast(x: Tensor) -> Tensor:
    return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def _gelu_new(x: Tensor) -> Tensor:
    return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * (x + 0.044715 * torch.pow(x, 3.0))))


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": F.gelu,
    "gelu_python": F.gelu,
    "gelu_new": _gelu_new,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": _gelu_fast,
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "mish": F.mish,
    "linear": lambda x: x,
}


def activation(name: str) -> Callable[[Tensor], Tensor]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise SpecError(f"hidden_act {name!r} is unknown to the heads; use one of {', '.join(ACTIVATIONS)}") from None


# -- label checks: clear errors instead of deep torch messages ----------------------------------------
def _is_integer(t: Tensor) -> bool:
    return not t.dtype.is_floating_point and not t.dtype.is_complex and t.dtype != torch.bool


def check_class_labels(labels: Tensor, name: str, batch_shape: tuple[int, ...], head: str) -> Tensor:
    """Class-index labels: integer dtype, ``batch_shape`` elements (a trailing 1 is allowed).

    Returns the labels as int64 (int32 is accepted and widened; HF would fail inside the loss).

    Raises:
        InputError: wrong dtype or shape.
    """
    if not isinstance(labels, Tensor):
        raise InputError(f"{head}: {name} must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if not _is_integer(labels):
        raise InputError(
            f"{head}: {name} must hold integer class indices (torch.long), got dtype {labels.dtype}; "
            "convert with .long()"
        )
    shape = tuple(labels.shape)
    if shape != batch_shape and shape != (*batch_shape, 1):
        raise InputError(
            f"{head}: {name} has shape {shape} but the logits need {batch_shape} "
            f"(one class index per {'token' if len(batch_shape) == 2 else 'example'}; {IGNORE_INDEX} = ignore)"
        )
    return labels.long()


def check_float_labels(labels: Tensor, name: str, shapes: tuple[tuple[int, ...], ...], head: str, why: str) -> Tensor:
    """Float targets (regression, multi-label) with one of the accepted ``shapes``.

    Raises:
        InputError: integer dtype or wrong shape.
    """
    if not isinstance(labels, Tensor):
        raise InputError(f"{head}: {name} must be a torch.Tensor, got {type(labels).__name__}")
    if not labels.dtype.is_floating_point:
        raise InputError(f"{head}: {name} must be floating point for {why}, got dtype {labels.dtype}; convert with .float()")
    if tuple(labels.shape) not in shapes:
        want = " or ".join(str(s) for s in dict.fromkeys(shapes))
        raise InputError(f"{head}: {name} has shape {tuple(labels.shape)} but {why} needs {want}")
    return labels
