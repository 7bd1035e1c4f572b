"""One error hierarchy. Every message names the thing, the cause and the fix."""

from __future__ import annotations


class BertzooError(Exception):
    """Root of every error bertzoo raises on purpose (user errors, broken inputs, broken plugins)."""


class ComponentNotFoundError(BertzooError, KeyError):
    """A component name that is unknown, ambiguous, or whose plugin failed to load."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class IncompatibleComponentError(BertzooError):
    """A component cannot serve a request (device, dtype, capability such as attention weights)."""


class SpecError(BertzooError, ValueError):
    """A model spec, preset or override that does not validate."""


class CheckpointError(BertzooError):
    """A checkpoint folder or file that cannot be read, or does not fit the model."""


class PluginError(BertzooError):
    """A plugin that failed to import, register, or declare itself compatible."""


class InputError(BertzooError, ValueError):
    """Bad forward arguments: wrong shapes, ranks, dtypes or combinations."""


def check_choice(what: str, value: object, choices: tuple[str, ...] | list[str]) -> str:
    """``value`` if it is one of ``choices``, else an :class:`InputError` naming the valid ones.

    The one wording of "unknown option value" errors: ``truncate='x' is unknown; use one of a, b``.
    """
    if value not in choices:
        raise InputError(f"{what}={value!r} is unknown; use one of {', '.join(choices)}")
    return str(value)
