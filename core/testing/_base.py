"""Cases, failures and measured comparisons shared by every kind's checks.

A :class:`Case` is one named check of one component (``padding[right,bf16]`` of
``example:sliding-window``). Running it either returns or raises :class:`ConformanceFailure`,
whose message names the component, the case, what was measured and how to fix it, e.g.::

    attention example:sliding-window, case causal[padded,bf16]: context differs from the eager
    reference: max |diff| 0.0412 at (batch 2, head 1, query 4, dim 0) > tolerance 0.02. Fix: honour
    mask.causal: query i sees keys j <= i + mask.query_offset

Shape legend: ``B`` batch, ``h`` heads, ``S`` query length, ``S_k`` key length, ``d`` head size.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from bertzoo.errors import BertzooError

# Absolute tolerances against a float64 reference. Inputs are O(1); fp32 kernels differ in
# summation order only; bf16 / fp16 inputs are rounded to 8 / 11 mantissa bits and kernels
# accumulate in fp32, so outputs (averages of O(1) values) carry ~2^-8 relative error.
TOLERANCES: dict[torch.dtype, float] = {
    torch.float64: 1e-10,
    torch.float32: 1e-5,
    torch.bfloat16: 2e-2,
    torch.float16: 2e-2,
}
DTYPE_IDS: dict[torch.dtype, str] = {
    torch.float64: "fp64", torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16",
}


class ConformanceFailure(BertzooError, AssertionError):
    """One case of one component did not conform. The message says which, and by how much."""


class ConformanceError(BertzooError, AssertionError):
    """A component or plugin failed one or more cases; ``report`` holds every result."""

    def __init__(self, message: str, report: ConformanceReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class CaseFailed(Exception):
    """Raised inside a case body with the measured detail; :meth:`Case.run` adds who and which."""


@dataclass(frozen=True)
class Case:
    """One check of one component.

    Attributes:
        kind: the component kind (``attention``, ``embedding``, ...).
        component: the component's full name (``plugin:name``).
        name: the case, e.g. ``padding[right,bf16]``.
        body: the check; raises :class:`CaseFailed` (or anything else) when it fails.
        skip: why this case cannot run here (e.g. no CUDA device), or None.
        hint: how to fix the component when the case fails; appended to the failure message.
    """

    kind: str
    component: str
    name: str
    body: Callable[[], None] = field(repr=False, compare=False)
    skip: str | None = None
    hint: str = field(default="", compare=False)

    @property
    def id(self) -> str:
        """``kind/plugin:name/case``: unique, stable, usable as a pytest id."""
        return f"{self.kind}/{self.component}/{self.name}"

    def run(self) -> None:
        """Run the check.

        Raises:
            ConformanceFailure: the check failed; the message names the component and the case.
        """
        prefix = f"{self.kind} {self.component}, case {self.name}"
        fix = f". Fix: {self.hint}" if self.hint else ""
        try:
            self.body()
        except CaseFailed as exc:
            raise ConformanceFailure(f"{prefix}: {exc}{fix}") from None
        except ConformanceFailure:
            raise
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            raise ConformanceFailure(
                f"{prefix}: raised {type(exc).__name__}: {exc} (at {where.filename}:{where.lineno}){fix}"
            ) from exc


@dataclass
class ConformanceReport:
    """Results of a set of cases: what passed, what failed (with messages) and what was skipped."""

    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        line = f"{len(self.passed)} passed, {len(self.failed)} failed, {len(self.skipped)} skipped"
        return "\n".join([line, *(f"  FAILED {message}" for message in self.failed.values())])


def hinted(cases: list[Case], hints: Mapping[str, str]) -> list[Case]:
    """``cases`` with the hint of their family (the case name before ``[``) from ``hints``."""
    return [replace(c, hint=c.hint or hints.get(c.name.split("[", 1)[0], "")) for c in cases]


def guarded(kind: str, component: str, setup: Callable[[], None], cases: list[Case], hint: str) -> list[Case]:
    """``cases``, unless ``setup()`` (import the target, build it once) raises: then one failing
    ``setup`` case saying why, and every other case of this component skipped. Other components'
    cases are unaffected."""
    try:
        setup()
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"

        def failed() -> None:
            raise CaseFailed(f"could not build the component, so its other cases were skipped: {message}")

        skipped = [replace(c, skip=f"setup failed ({message})") for c in cases]
        return [Case(kind, component, "setup", failed, hint=hint), *skipped]
    return cases


def run_cases(cases: list[Case], *, raise_on_failure: bool = True, what: str = "component") -> ConformanceReport:
    """Run ``cases`` in order and collect a report.

    Raises:
        ConformanceError: some case failed and ``raise_on_failure`` is set; the message lists
            every failure, one per line.
    """
    report = ConformanceReport()
    for case in cases:
        if case.skip is not None:
            report.skipped[case.id] = case.skip
            continue
        try:
            case.run()
        except ConformanceFailure as exc:
            report.failed[case.id] = str(exc)
        else:
            report.passed.append(case.id)
    if raise_on_failure and report.failed:
        raise ConformanceError(f"{what} does not conform: {report.summary()}", report)
    return report


# -- measured comparisons --------------------------------------------------------------------------------


def _where(index: tuple[int, ...], names: tuple[str, ...]) -> str:
    named = [f"{n} {i}" for n, i in zip(names, index, strict=False)]
    return "(" + ", ".join(named + [str(i) for i in index[len(names):]]) + ")"


def compare(
    what: str,
    actual: Tensor,
    expected: Tensor,
    *,
    atol: float,
    rows: Tensor | None = None,
    dims: tuple[str, ...] = ("batch", "head", "query", "dim"),
) -> float:
    """Fail unless ``|actual - expected| <= atol`` where ``rows`` is True; return the max difference.

    Args:
        what: what is compared, for the message (``"context"``).
        actual, expected: the same shape; compared in float64.
        rows: bool, broadcastable to that shape: positions that count (real queries); None = all.
        dims: names of the leading dimensions, for the location in the message.

    Raises:
        CaseFailed: a shape mismatch, a NaN/inf where the reference is finite, or a difference
            above ``atol`` (the message gives the largest, where it is, and the tolerance).
    """
    if tuple(actual.shape) != tuple(expected.shape):
        raise CaseFailed(f"{what} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
    diff = (actual.detach().double().cpu() - expected.detach().double().cpu()).abs()
    diff = diff.nan_to_num(nan=float("inf"))
    if rows is not None:
        diff = diff.masked_fill(~rows.cpu().expand_as(diff), 0.0)
    if diff.numel() == 0:
        return 0.0
    worst = float(diff.max())
    if worst > atol:
        index = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
        raise CaseFailed(
            f"{what} differs from the reference: max |diff| {worst:.3g} at {_where(index, dims)} "
            f"> tolerance {atol:g}"
        )
    return worst


def expect(condition: bool, message: str) -> None:
    """Fail the case with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CaseFailed(message)


def expect_raises(
    error: type[BaseException], call: Callable[[], Any], *, doing: str, mentions: tuple[str, ...] = ()
) -> BaseException:
    """Fail unless ``call()`` raises ``error`` whose message contains every string in ``mentions``."""
    try:
        call()
    except error as exc:
        text = str(exc)
        missing = [m for m in mentions if m.lower() not in text.lower()]
        if missing:
            raise CaseFailed(
                f"{doing} raised {type(exc).__name__} as it should, but its message does not mention "
                f"{', '.join(repr(m) for m in missing)}: {text!r}"
            ) from None
        return exc
    except Exception as exc:
        raise CaseFailed(
            f"{doing} raised {type(exc).__name__} ({exc}); it must raise {error.__name__}"
        ) from None
    raise CaseFailed(f"{doing} did not raise; it must raise {error.__name__}")


def conformance_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The ``conformance`` entry of a record's metadata: ``{"options": {...}, "spec": {...}}``."""
    value = metadata.get("conformance") or {}
    return dict(value) if isinstance(value, Mapping) else {}
