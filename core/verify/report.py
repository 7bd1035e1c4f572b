"""What :func:`~bertzoo.verify.verify` found: :class:`VerifyReport` (``format()`` is what ``bertzoo verify``
prints, ``as_dict()`` its ``--json``) and the token-id check :class:`TokenizerCheck`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bertzoo.verify.compare import Comparison
from bertzoo.verify.tolerances import Tolerance


@dataclass
class TokenizerCheck:
    """Token ids of bertzoo's tokenizer against the reference tokenizer's.

    Attributes:
        reference: which tokenizer (``"transformers AutoTokenizer"``, ``"sentence-transformers"``).
        total: inputs compared.
        mismatched: indices of inputs whose ids differ.
    """

    reference: str
    total: int
    mismatched: list[int] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.mismatched

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass
class VerifyReport:
    """Everything :func:`verify` found; ``passed`` says whether every check held.

    Attributes:
        model: what was asked for (folder or hub id).
        folder: the resolved checkpoint folder.
        kind: ``"transformers"`` or ``"sentence-transformers"`` (a ``modules.json`` folder).
        head: the bertzoo head compared (None = the trunk).
        reference_class: the transformers class used as the reference.
        versions: package versions of the references.
        device: where both ran.
        dtype: bertzoo's dtype (the reference always runs in float32).
        max_length: bertzoo's resolved maximum length (special tokens included).
        max_length_source: where it came from, with the other candidates.
        inputs: ``{"texts": n, "pairs": n}``.
        layouts: the batch layouts, e.g. ``{"mixed": "1 batch of 20, padded to 256 tokens"}``.
        tolerance: the thresholds applied.
        tokenizer: the token-id check (None when no reference tokenizer could be loaded).
        comparisons: one per (attention, output).
        skipped: attention implementations not compared, with the reason.
        notes: anything else worth knowing (outputs not compared and why).
        seconds: wall time of the whole run.
    """

    model: str
    folder: str
    kind: str
    head: str | None
    reference_class: str
    versions: dict[str, str]
    device: str
    dtype: str
    max_length: int
    max_length_source: str
    inputs: dict[str, int]
    layouts: dict[str, str]
    tolerance: Tolerance
    tokenizer: TokenizerCheck | None = None
    comparisons: list[Comparison] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Every comparison within tolerance, identical token ids, and at least one comparison made."""
        ok = bool(self.comparisons) and all(c.passed for c in self.comparisons)
        return ok and (self.tokenizer is None or self.tokenizer.passed)

    @property
    def failures(self) -> list[str]:
        out = [f"{c.attention} {c.output}: max |diff| {c.max_abs_diff:.3g} (allowed {c.allowed_abs:.3g}), "
               f"cosine min {c.cosine_min:.7f} (allowed {c.tolerance.min_cosine:g})"
               for c in self.comparisons if not c.passed]
        if self.tokenizer is not None and not self.tokenizer.passed:
            out.append(f"tokenizer: ids differ from {self.tokenizer.reference} on inputs {self.tokenizer.mismatched}")
        if not self.comparisons:
            out.append("nothing was compared (every attention implementation was skipped)")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "folder": self.folder, "kind": self.kind, "head": self.head,
            "reference_class": self.reference_class, "versions": self.versions, "device": self.device,
            "dtype": self.dtype, "max_length": self.max_length, "max_length_source": self.max_length_source,
            "inputs": self.inputs, "layouts": self.layouts,
            "tolerance": {**asdict(self.tolerance), "rule": str(self.tolerance)},
            "tokenizer": self.tokenizer.as_dict() if self.tokenizer is not None else None,
            "comparisons": [c.as_dict() for c in self.comparisons],
            "skipped": self.skipped, "notes": self.notes, "passed": self.passed, "failures": self.failures,
            "seconds": round(self.seconds, 3),
        }

    def format(self) -> str:
        """The human-readable report (what ``bertzoo verify`` prints)."""
        refs = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        lines = [
            f"bertzoo verify {self.model}",
            f"  folder:     {self.folder} ({self.kind} checkpoint)",
            f"  bertzoo:    head {self.head or 'none (trunk)'}, {self.dtype} on {self.device}",
            f"  reference:  {self.reference_class} (eager attention, float32); {refs}",
            f"  inputs:     {self.inputs['texts']} texts + {self.inputs['pairs']} text pairs, max length {self.max_length} "
            f"({self.max_length_source})",
        ]
        lines += [f"  layout:     {name}: {what}" for name, what in self.layouts.items()]
        lines.append(f"  tolerance:  {self.tolerance}")
        if self.tokenizer is not None:
            t = self.tokenizer
            verdict = "PASS" if t.passed else f"FAIL (inputs {t.mismatched})"
            lines.append(f"  tokenizer:  ids identical to {t.reference} on {t.total - len(t.mismatched)}/{t.total} "
                         f"inputs  {verdict}")
        lines.append("")
        header = ["ATTENTION", "OUTPUT", "REFERENCE", "ROWS", "MAX|DIFF|", "ALLOWED", "COS MIN", "COS MEAN", "RESULT"]
        rows = [[c.attention, c.output, c.reference, str(c.rows), f"{c.max_abs_diff:.2e}", f"{c.allowed_abs:.1e}",
                 f"{c.cosine_min:.7f}", f"{c.cosine_mean:.7f}", "PASS" if c.passed else "FAIL"]
                for c in self.comparisons]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        for name, why in self.skipped.items():
            lines.append(f"  skipped {name}: {why}")
        lines += [f"  note: {note}" for note in self.notes]
        lines.append("")
        if self.passed:
            lines.append(f"PASS: {len(self.comparisons)} comparisons within tolerance ({self.seconds:.1f}s)")
        else:
            lines.append(f"FAIL: {len(self.failures)} check(s) out of tolerance")
            lines += [f"  {f}" for f in self.failures]
        return "\n".join(lines)


__all__ = ["TokenizerCheck", "VerifyReport"]
