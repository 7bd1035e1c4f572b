"""LoadReport: what happened to every key when a checkpoint was loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bertzoo.checkpoint.layout import CORE_ROOTS, short_list, strip_base


@dataclass
class LoadReport:
    """What happened to every key when a checkpoint was loaded.

    Attributes:
        source: the folder the weights came from.
        files: weight files read.
        missing: model keys absent from the checkpoint (left at their initial values).
        unexpected: checkpoint keys the model has no place for (not loaded).
        ignored: checkpoint keys the model leaves out by design: HF's pooler (``pooler.dense.*``)
            when the model has none (token-level heads); they keep the report clean.
        mismatched: ``(key, checkpoint_shape, model_shape)`` for keys whose shapes differ (not loaded).
        newly_initialized: every model key whose value did not come from the checkpoint.
        expected_new: the subset of missing/mismatched keys that are new by design (head keys
            loaded from a trunk checkpoint, a pooler the file lacks, a classifier re-sized by
            ``num_labels``); ``strict=True`` does not raise for them.
        renamed: ``(file key, model key)`` for legacy renames (``gamma``/``beta``).
        dropped: stale buffers skipped silently (``embeddings.position_ids``).
        untied: tied keys the file gave different values for, now separate parameters.
        mismatched_dtype: ``(key, checkpoint_dtype, model_dtype)`` for integer, bool or complex
            tensors where the model has floating parameters (not loaded: a cast would hide a
            corrupt or foreign file).
        non_finite: loaded keys holding NaN or Inf (``from_pretrained`` refuses them unless
            ``check_finite=False``, which also skips the check).
    """

    source: str = ""
    files: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    newly_initialized: list[str] = field(default_factory=list)
    expected_new: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    untied: list[str] = field(default_factory=list)
    mismatched_dtype: list[tuple[str, str, str]] = field(default_factory=list)
    non_finite: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Every model key loaded, nothing left over."""
        return not (self.missing or self.unexpected or self.mismatched or self.untied or self.mismatched_dtype
                    or self.non_finite)

    def problems(self) -> list[str]:
        """Keys ``strict=True`` refuses: missing or mismatched keys not new by design, and
        unexpected trunk keys (embeddings/encoder: the checkpoint is a different architecture)."""
        fresh = set(self.expected_new)
        out = [f"missing {k}" for k in self.missing if k not in fresh]
        out += [f"shape mismatch {k}: checkpoint {tuple(a)} vs model {tuple(b)}"
                for k, a, b in self.mismatched if k not in fresh]
        out += [f"unexpected {k}" for k in self.unexpected if strip_base(k).split(".", 1)[0] in CORE_ROOTS]
        out += [f"dtype mismatch {k}: checkpoint {a} vs model {b}" for k, a, b in self.mismatched_dtype]
        return out

    def summary(self) -> str:
        if self.clean:
            return f"loaded every key from {self.source}{self._ignored_note()}"
        lines = [f"load report for {self.source}:"]
        for title, keys in (("MISSING", self.missing), ("UNEXPECTED", self.unexpected), ("UNTIED", self.untied),
                            ("NOT FINITE", self.non_finite)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): {short_list(keys)}")
        if self.mismatched:
            lines.append(f"  MISMATCHED ({len(self.mismatched)}): " + short_list(
                [f"{k} checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in self.mismatched]))
        if self.mismatched_dtype:
            lines.append(f"  WRONG DTYPE ({len(self.mismatched_dtype)}): " + short_list(
                [f"{k} checkpoint {a} vs model {b}" for k, a, b in self.mismatched_dtype]))
        if self.newly_initialized:
            lines.append(f"  newly initialised ({len(self.newly_initialized)}): {short_list(self.newly_initialized)}")
        if self.ignored:
            lines.append(f" {self._ignored_note()}")
        return "\n".join(lines)

    def _ignored_note(self) -> str:
        if not self.ignored:
            return ""
        return f" (ignored {len(self.ignored)} key(s) the model does not use: {short_list(self.ignored)})"

    def as_dict(self) -> dict[str, Any]:
        """transformers' ``output_loading_info`` names, plus ours."""
        return {
            "missing_keys": list(self.missing), "unexpected_keys": list(self.unexpected),
            "ignored_keys": list(self.ignored),
            "mismatched_keys": [(k, tuple(a), tuple(b)) for k, a, b in self.mismatched],
            "newly_initialized_keys": list(self.newly_initialized), "expected_new_keys": list(self.expected_new),
            "renamed_keys": list(self.renamed), "dropped_keys": list(self.dropped), "untied_keys": list(self.untied),
            "mismatched_dtype_keys": list(self.mismatched_dtype), "non_finite_keys": list(self.non_finite),
        }


__all__ = ["LoadReport"]
