"""What every head shares: the trunk call, the small head contract, task-state checks and label checks.

A head is built as ``HeadClass(bert, spec, **options)``. It owns the trunk as ``self.bert`` and
its own modules under HF's top-level names (``cls``, ``classifier``, ``qa_outputs``), so its
``state_dict`` keys are HF's. Class attributes tell the factory and the checkpoint code what
they need to know (timm's ``PretrainedCfg.classifier`` idea):

- ``uses_pooler``: whether the trunk keeps ``pooler.dense`` (HF's ``add_pooling_layer``).
- ``classifier_keys``: the task-specific keys that are re-initialised when ``num_labels`` changes.
- ``options_model``: the pydantic model validating the head's options (None = no options).
- ``per_token_outputs``: the head's outputs or loss cover every position, padded ones included
  (token logits, a softmax over the sequence); its forward runs the trunk padded, since packed
  calls leave zeros at padding where transformers computes values.

A head that serves a main-job task (its registration says ``task=...``) also implements that
task's contract from :mod:`bertzoo.interfaces` (``embed_states``, ``classify_states``, ...) on the
:class:`~bertzoo.interfaces.TaskStates` the pipeline hands it; :func:`check_states` and
:func:`check_positions` turn bad states into :class:`~bertzoo.errors.InputError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ValidationError
from torch import Tensor, nn

from bertzoo.checkpoint import PretrainedMixin
from bertzoo.errors import InputError, SpecError
from bertzoo.heads.conveniences import ModelConveniences
from bertzoo.interfaces import TaskStates

IGNORE_INDEX = -100  # labels with this value do not count in the loss (CrossEntropyLoss default)


class BertHead(ModelConveniences, PretrainedMixin, nn.Module):
    """Base of the built-in heads. Subclasses set the class attributes and write ``forward``."""

    uses_pooler: ClassVar[bool] = True
    classifier_keys: ClassVar[tuple[str, ...]] = ()
    options_model: ClassVar[type[BaseModel] | None] = None
    per_token_outputs: ClassVar[bool] = False

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
        """Call the trunk with ``return_dict=True``; ``None`` arguments are left to its defaults.

        The trunk runs padded (``keep_padding``) when an output covers padded positions: the
        head's per-token outputs, or hidden states asked for, so they equal transformers'.
        """
        kwargs["return_dict"] = True
        if self.per_token_outputs or kwargs.get("output_hidden_states"):
            kwargs["keep_padding"] = True
        return self.bert(**{k: v for k, v in kwargs.items() if v is not None or k == "input_ids"})


def classifier_dropout(spec: Any) -> float:
    """``classifier_dropout``, or ``hidden_dropout_prob`` when it is None (HF's fallback)."""
    return spec.classifier_dropout if spec.classifier_dropout is not None else spec.hidden_dropout_prob


def finish(output: Any, return_dict: bool | None) -> Any:
    """``return_dict=False`` → HF's tuple (non-None fields in field order)."""
    return output if return_dict is None or return_dict else output.to_tuple()


# -- task contracts: the states the pipeline hands a head ------------------------------------------
def check_states(states: TaskStates, head: str, hidden_size: int) -> Tensor:
    """The hidden states of a :class:`~bertzoo.interfaces.TaskStates`, checked against its layout.

    Raises:
        InputError: states that are not a TaskStates, or whose tensors do not fit each other or
            the model (``hidden_size``).
    """
    if not isinstance(states, TaskStates):
        raise InputError(f"{head}: task methods take a bertzoo.interfaces.TaskStates, got {type(states).__name__}")
    hidden = states.hidden
    if not isinstance(hidden, Tensor):
        raise InputError(f"{head}: TaskStates.hidden must be a torch.Tensor, got {type(hidden).__name__}")
    if states.cu_seqlens is not None:
        if states.attention_mask is not None:
            raise InputError(f"{head}: TaskStates has both cu_seqlens (packed) and attention_mask (padded); give one")
        want, layout = 2, "packed states with cu_seqlens must be (tokens, hidden)"
    else:
        want, layout = 3, "padded states must be (batch, seq, hidden); packed ones need cu_seqlens"
    if hidden.dim() != want or hidden.shape[-1] != hidden_size:
        raise InputError(
            f"{head}: hidden states have shape {tuple(hidden.shape)}; {layout} with hidden = {hidden_size}, "
            "the trunk's last hidden state"
        )
    mask = states.attention_mask
    if mask is not None and tuple(mask.shape) != tuple(hidden.shape[:-1]):
        raise InputError(
            f"{head}: attention_mask has shape {tuple(mask.shape)} but the states are {tuple(hidden.shape)}; "
            "give one entry per token (batch, seq)"
        )
    return hidden


def check_positions(positions: Tensor, states: TaskStates, head: str) -> Tensor:
    """``positions`` of :meth:`~bertzoo.interfaces.FillMaskTask.mask_logits`: bool, shaped like ``input_ids``.

    Raises:
        InputError: a non-bool tensor or a shape other than the states' tokens.
    """
    tokens = tuple(states.hidden.shape[:-1])
    if not isinstance(positions, Tensor) or positions.dtype != torch.bool:
        what = f"dtype {positions.dtype}" if isinstance(positions, Tensor) else type(positions).__name__
        raise InputError(f"{head}: positions must be a bool tensor (True at mask tokens), got {what}; "
                         "use input_ids == mask_id")
    if tuple(positions.shape) != tokens:
        raise InputError(f"{head}: positions has shape {tuple(positions.shape)} but the states hold {tokens} tokens; "
                         "give one entry per token")
    return positions


def check_pooled(pooled: Any, states: TaskStates, head: str, hidden_size: int) -> Tensor:
    """The trunk pooler's output on task states: ``(B, H)``.

    Raises:
        InputError: naming the pooler, when it returns another shape.
    """
    want = (states.batch_size, hidden_size)
    if not isinstance(pooled, Tensor) or tuple(pooled.shape) != want:
        got = tuple(pooled.shape) if isinstance(pooled, Tensor) else type(pooled).__name__
        raise InputError(f"{head}: the trunk's pooler returned {got}, expected {want} (batch, hidden); "
                         "fix the pooler component or pick another one (components.pooler)")
    return pooled


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
