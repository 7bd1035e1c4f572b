"""``mean-regression``: predict numbers from the mean of the real tokens' hidden states.

bertzoo's head contract (docs/plugin-guide.md): the head is built as ``Head(bert, spec,
**options)``, keeps the trunk at ``.bert``, names its own modules (here ``regressor``, the key
re-initialised when ``num_targets`` changes) and says whether the trunk needs its pooler.

Shape legend: ``B`` batch, ``S`` sequence length, ``H`` hidden size, ``T`` num_targets.
"""

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertzoo.errors import InputError
from bertzoo.model import ModelOutput


@dataclass(eq=False)
class RegressionOutput(ModelOutput):
    """``predictions`` (B, T); ``loss`` when labels were given."""

    loss: Tensor | None = None
    predictions: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


class MeanRegressionHead(nn.Module):
    """dropout → ``regressor: Linear(H, T)`` on the mean of the real tokens; MSE loss."""

    uses_pooler: ClassVar[bool] = False  # mean pooling replaces BERT's pooler
    classifier_keys: ClassVar[tuple[str, ...]] = ("regressor",)

    def __init__(self, bert: nn.Module, spec: Any, *, num_targets: int = 1) -> None:
        super().__init__()
        self.bert = bert
        self.spec = spec
        self.num_targets = num_targets
        rate = spec.classifier_dropout if spec.classifier_dropout is not None else spec.hidden_dropout_prob
        self.dropout = nn.Dropout(rate)
        self.regressor = nn.Linear(spec.hidden_size, num_targets)

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        labels: Tensor | None = None,
        return_dict: bool | None = None,
        **trunk_kwargs: Any,
    ) -> RegressionOutput | tuple[Tensor, ...]:
        """Args: ids (B, S), mask (B, S); ``labels`` (B, T) or, for T = 1, (B,) floats.

        Raises:
            InputError: labels that are not floating point or not of shape (B, T).
        """
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                        return_dict=True, **trunk_kwargs)
        tokens = out.last_hidden_state  # (B, S, H)
        if attention_mask is None:
            pooled = tokens.mean(dim=1)
        else:
            m = attention_mask[:, -tokens.shape[1]:, None].to(tokens.dtype)  # (B, S, 1)
            pooled = (tokens * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)  # (B, H)
        predictions = self.regressor(self.dropout(pooled))  # (B, T)
        loss = None
        if labels is not None:
            loss = F.mse_loss(predictions.float(), self._check_labels(labels, predictions).float())
        output = RegressionOutput(loss, predictions, out.hidden_states, out.attentions)
        return output if return_dict is None or return_dict else output.to_tuple()

    def _check_labels(self, labels: Tensor, predictions: Tensor) -> Tensor:
        batch, targets = predictions.shape
        if not labels.dtype.is_floating_point:
            raise InputError(f"mean-regression: labels must be floating point, got {labels.dtype}; use .float()")
        if tuple(labels.shape) == (batch,) and targets == 1:
            return labels[:, None]
        if tuple(labels.shape) != (batch, targets):
            raise InputError(
                f"mean-regression: labels have shape {tuple(labels.shape)} but the head predicts "
                f"{(batch, targets)} (num_targets={targets})"
            )
        return labels

    # config.json carries num_targets, so from_pretrained rebuilds the head with the right shape
    @classmethod
    def hf_config_from_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        return {"num_targets": options.get("num_targets", 1)}

    @classmethod
    def options_from_hf_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        return {"num_targets": config["num_targets"]} if "num_targets" in config else {}

    def save_pretrained(self, path: Any, **kwargs: Any) -> Any:
        from bertzoo.checkpoint import save_pretrained

        return save_pretrained(self, path, **kwargs)

    @classmethod
    def conformance_inputs(cls, spec: Any, *, batch_size: int, seq_len: int, generator: torch.Generator
                           ) -> dict[str, Tensor]:
        """Forward arguments with labels, for bertzoo's conformance kit."""
        targets = spec.components.head.options.get("num_targets", 1)
        mask = torch.ones(batch_size, seq_len, dtype=torch.long)
        mask[-1, seq_len // 2:] = 0  # one padded text
        return {
            "input_ids": torch.randint(1, spec.vocab_size, (batch_size, seq_len), generator=generator),
            "attention_mask": mask,
            "labels": torch.randn(batch_size, targets, generator=generator),
        }
