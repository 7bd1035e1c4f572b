"""transformers' model conveniences for heads: embeddings access, resizing, parameter counts,
dtype / device, gradient checkpointing (:class:`ModelConveniences`, mixed into every built-in head).

A plugin head that keeps the trunk at ``self.bert`` (and, for a vocabulary projection, HF's
``cls.predictions.decoder``) can mix it in too. ``resize_token_embeddings`` follows transformers
5.24 step by step, random draws included, so the same seed gives the same new rows:

- new rows of the word embeddings (and of an untied decoder) are drawn around the old rows'
  mean with covariance ``1e-9 * cov`` (the mean itself when that is not positive definite), or
  from ``normal(0, initializer_range)`` with ``mean_resizing=False``;
- a tied decoder follows the word embeddings; the output bias gets zeros for the new tokens
  (transformers pads the tied bias with zeros after resizing);
- shrinking keeps the first rows; ``spec.vocab_size`` follows.

Shape legend: ``V`` vocabulary size, ``H`` hidden size.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import constraints
from torch.distributions.multivariate_normal import MultivariateNormal

from bertzoo.errors import InputError

_MEAN_RESIZE_EPSILON = 1e-9  # transformers' scale of the old rows' covariance for new rows


def _init_added_rows_with_mean(old: torch.Tensor, new: torch.Tensor, added: int) -> None:
    """New last ``added`` rows of ``new`` (V', H) drawn around the mean of ``old`` (V, H)'s rows."""
    weight = old.detach().to(torch.float32)
    mean = weight.mean(dim=0)
    centered = weight - mean
    covariance = centered.T @ centered / weight.shape[0]
    if constraints.positive_definite.check(_MEAN_RESIZE_EPSILON * covariance).all():
        sample = MultivariateNormal(mean, covariance_matrix=_MEAN_RESIZE_EPSILON * covariance).sample((added,))
        new.data[-added:, :] = sample.to(old.dtype)
    else:  # no distribution without a positive definite covariance: the mean itself
        new.data[-added:, :] = mean[None, :].repeat(added, 1).to(old.dtype)


def resized_embedding(old: nn.Embedding, size: int, *, mean_resizing: bool, initializer_range: float) -> nn.Embedding:
    """``old`` with ``size`` rows, resized in place (the Parameter object is kept, so ties hold)."""
    old_size, dim = old.weight.shape
    if old_size == size:
        old.num_embeddings = size
        return old
    new = nn.Embedding(size, dim, device=old.weight.device, dtype=old.weight.dtype)
    if size > old_size:
        if mean_resizing:
            _init_added_rows_with_mean(old.weight, new.weight, size - old_size)
        else:
            nn.init.normal_(new.weight, mean=0.0, std=initializer_range)
    keep = min(old_size, size)
    new.weight.data[:keep, :] = old.weight.data[:keep, :]
    old.weight.data = new.weight.data
    old.num_embeddings = size
    if old.padding_idx is not None and size - 1 < old.padding_idx:
        old.padding_idx = None
    return old


def resized_decoder(old: nn.Linear, size: int, *, mean_resizing: bool, initializer_range: float) -> nn.Linear:
    """A (H → ``size``) copy of the vocabulary projection ``old``; ``old`` itself when its weight
    already has ``size`` rows (a decoder tied to resized word embeddings)."""
    old_size, dim = old.weight.shape
    if old_size == size:
        old.out_features = size
        return old
    has_bias = old.bias is not None
    new = nn.Linear(dim, size, bias=has_bias, device=old.weight.device, dtype=old.weight.dtype)
    if size > old_size:
        added = size - old_size
        if mean_resizing:
            _init_added_rows_with_mean(old.weight, new.weight, added)
            if old.bias is not None and new.bias is not None:
                mean = old.bias.data.mean(dtype=torch.float32)
                std = old.bias.data.std().to(torch.float32)
                new.bias.data[-added:].normal_(mean=float(mean), std=float(_MEAN_RESIZE_EPSILON * std))
        else:
            nn.init.normal_(new.weight, mean=0.0, std=initializer_range)
            if new.bias is not None:
                nn.init.zeros_(new.bias)
    keep = min(old_size, size)
    new.weight.data[:keep, :] = old.weight.data[:keep, :]
    if old.bias is not None and new.bias is not None:
        new.bias.data[:keep] = old.bias.data[:keep]
    return new


def _pad_bias(bias: nn.Parameter, old_size: int, size: int) -> None:
    # transformers ties the decoder bias to the output bias and pads it with zeros (_adjust_bias)
    keep = min(old_size, size, bias.shape[0])
    bias.data = F.pad(bias.data[:keep], (0, size - keep), "constant", 0)


class ModelConveniences:
    """transformers' ``PreTrainedModel`` conveniences for a module holding the trunk at ``self.bert``."""

    bert: Any
    spec: Any

    # -- where the model lives ----------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype  # type: ignore[attr-defined, no-any-return]

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device  # type: ignore[attr-defined, no-any-return]

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Parameter count (tied parameters counted once), like HF's ``num_parameters``."""
        modules: Any = self.modules()  # type: ignore[attr-defined]
        skip = {id(p) for m in modules if isinstance(m, nn.Embedding) for p in m.parameters()}
        return sum(
            p.numel() for p in self.parameters()  # type: ignore[attr-defined]
            if (p.requires_grad or not only_trainable) and not (exclude_embeddings and id(p) in skip)
        )

    # -- embeddings -----------------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.bert.get_input_embeddings()  # type: ignore[no-any-return]

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.bert.set_input_embeddings(value)

    def _predictions(self) -> Any:
        return getattr(getattr(self, "cls", None), "predictions", None)

    def get_output_embeddings(self) -> nn.Module | None:
        """The vocabulary projection (MLM / LM decoder), or None for heads without one."""
        return getattr(self._predictions(), "decoder", None)

    def set_output_embeddings(self, value: nn.Module) -> None:
        predictions = self._predictions()
        if predictions is None:
            raise InputError(f"{type(self).__name__} has no output embeddings (no cls.predictions.decoder) to set")
        predictions.decoder = value

    def resize_token_embeddings(
        self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None, mean_resizing: bool = True
    ) -> nn.Module:
        """Resize the word embeddings (and the decoder, tied or not, and the output bias) to
        ``new_num_tokens`` rows, as transformers does; returns the word embeddings.

        Raises:
            InputError: a size below 1, or a ``pad_to_multiple_of`` that is not a positive integer.
        """
        if pad_to_multiple_of is not None:
            if not isinstance(pad_to_multiple_of, int) or isinstance(pad_to_multiple_of, bool) or pad_to_multiple_of < 1:
                raise InputError(f"pad_to_multiple_of must be a positive integer, got {pad_to_multiple_of!r}")
            base = self.get_input_embeddings().weight.shape[0] if new_num_tokens is None else new_num_tokens
            new_num_tokens = -(-base // pad_to_multiple_of) * pad_to_multiple_of
        embeddings = self.get_input_embeddings()
        if new_num_tokens is None:
            return embeddings
        if isinstance(new_num_tokens, bool) or not isinstance(new_num_tokens, int) or new_num_tokens < 1:
            raise InputError(f"new_num_tokens must be a positive integer, got {new_num_tokens!r}")
        if not isinstance(embeddings, nn.Embedding):
            raise InputError(f"the word embeddings are a {type(embeddings).__name__}, not an nn.Embedding; "
                             "resize them yourself")
        init_range = float(self.spec.initializer_range)
        old_size = embeddings.weight.shape[0]
        requires_grad = embeddings.weight.requires_grad
        resized_embedding(embeddings, new_num_tokens, mean_resizing=mean_resizing, initializer_range=init_range)
        embeddings.weight.requires_grad_(requires_grad)
        decoder = new_decoder = self.get_output_embeddings()
        if isinstance(decoder, nn.Linear):
            requires_grad = decoder.weight.requires_grad
            new_decoder = resized_decoder(decoder, new_num_tokens, mean_resizing=mean_resizing,
                                          initializer_range=init_range)
            new_decoder.requires_grad_(requires_grad)
            self.set_output_embeddings(new_decoder)
        self.spec.vocab_size = new_num_tokens
        tie = getattr(self, "tie_weights", None)
        if callable(tie):
            tie()
        predictions = self._predictions()
        out_bias = getattr(predictions, "bias", None)
        if isinstance(out_bias, nn.Parameter):
            decoder_bias = getattr(new_decoder, "bias", None)
            if new_decoder is not decoder and isinstance(decoder_bias, nn.Parameter):
                # an untied decoder was rebuilt: transformers ties the output bias to the new decoder's
                out_bias.data = decoder_bias.data.clone()
            else:
                _pad_bias(out_bias, old_size, new_num_tokens)
        return embeddings

    # -- training -------------------------------------------------------------------------------
    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None) -> None:
        """Recompute the trunk's layers in the backward pass (training only) to save memory."""
        self.bert.gradient_checkpointing_enable(gradient_checkpointing_kwargs)

    def gradient_checkpointing_disable(self) -> None:
        self.bert.gradient_checkpointing_disable()

    @property
    def is_gradient_checkpointing(self) -> bool:
        return bool(getattr(self.bert, "gradient_checkpointing", False))


__all__ = ["ModelConveniences", "resized_decoder", "resized_embedding"]
