"""Options models: bertzoo validates a spec's ``components.<kind>.options`` against these."""

from pydantic import BaseModel, ConfigDict, Field


class SlidingWindowOptions(BaseModel):
    """Options of ``example:sliding-window``."""

    model_config = ConfigDict(extra="forbid")

    window: int = Field(128, ge=1, description="a query sees the keys at most `window` positions away")


class MeanRegressionOptions(BaseModel):
    """Options of ``example:mean-regression``."""

    model_config = ConfigDict(extra="forbid")

    num_targets: int = Field(1, ge=1, description="numbers predicted per text")
