"""Options of ELECTRA's ``multiple-choice`` head: the ``summary_*`` fields of ``ElectraConfig``.

Light on purpose (pydantic only): the registry loads it when a spec is validated.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SequenceSummaryOptions(BaseModel):
    """How ``sequence_summary`` reduces a sequence (transformers' ``ElectraSequenceSummary``)."""

    model_config = ConfigDict(extra="forbid")

    summary_type: Literal["first", "last", "mean"] = Field(
        "first", description="first token, last position, or mean of every position (padding included)")
    summary_use_proj: bool = Field(True, description="a Linear(H, H) 'summary' projection")
    summary_activation: Literal["gelu", "tanh", "relu"] | None = Field("gelu", description="activation after it")
    summary_last_dropout: float = Field(0.1, ge=0.0, le=1.0, description="dropout after the activation")
