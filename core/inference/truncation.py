"""The truncation policy: what embedding does with a text longer than the model's maximum length.

One owner for the rule: the names, their validation, the one-line summary and the tally that
``embed``, ``embed_stream`` and folder jobs share (the CLI takes its ``--truncate`` choices from
:data:`TRUNCATE_POLICIES`).

- ``error``: stop with an :class:`~bertzoo.errors.InputError` naming the first such text and its
  token count.
- ``warn``: cut it; one :class:`TruncationWarning` per call (or per stream) says how many were cut.
- ``silent``: cut it quietly.
- ``chunk``: split it into windows and average their embeddings (weighted by token count).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from bertzoo.errors import InputError, check_choice

TRUNCATE_POLICIES: tuple[str, ...] = ("error", "warn", "silent", "chunk")
DEFAULT_TRUNCATE = "warn"


class TruncationWarning(UserWarning):
    """Some texts were longer than the model's maximum length and were cut."""


def check_policy(policy: str) -> str:
    """``policy`` if it is one of :data:`TRUNCATE_POLICIES`.

    Raises:
        InputError: an unknown policy, naming the valid ones.
    """
    return check_choice("truncate", policy, TRUNCATE_POLICIES)


def truncation_summary(truncated: int, total: int, max_length: int, policy: str) -> str:
    """One line: ``"312 of 1,000,000 texts truncated at 256 tokens"`` (windows for ``chunk``)."""
    if policy == "chunk":
        return f"{truncated:,} of {total:,} texts longer than {max_length} tokens embedded as windows"
    return f"{truncated:,} of {total:,} texts truncated at {max_length} tokens"


def too_long_error(index: int, tokens: int, max_length: int, model: str) -> InputError:
    """The ``truncate="error"`` failure for text ``index``."""
    return InputError(
        f"text {index} has {tokens} tokens, more than the maximum length {max_length} of {model!r} "
        "(truncate='error'); shorten it, or choose truncate='warn', 'silent' or 'chunk'"
    )


@dataclass
class TruncationTally:
    """Counts texts over the maximum length across calls or chunks; warns once at the end under ``warn``."""

    policy: str
    max_length: int
    truncated: int = 0
    total: int = 0

    def __post_init__(self) -> None:
        check_policy(self.policy)

    def add(self, truncated: int, total: int) -> None:
        self.truncated += int(truncated)
        self.total += int(total)

    def summary(self) -> str | None:
        """The one-line summary, or None when nothing was over the maximum length."""
        if not self.truncated:
            return None
        return truncation_summary(self.truncated, self.total, self.max_length, self.policy)

    def warn(self, stacklevel: int = 3) -> None:
        """Under ``warn``, one :class:`TruncationWarning` with the summary (nothing if no text was cut)."""
        line = self.summary()
        if self.policy == "warn" and line is not None:
            warnings.warn(line, TruncationWarning, stacklevel=stacklevel)


__all__ = ["DEFAULT_TRUNCATE", "TRUNCATE_POLICIES", "TruncationTally", "TruncationWarning", "check_policy",
           "too_long_error", "truncation_summary"]
