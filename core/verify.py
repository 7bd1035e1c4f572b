"""``bertzoo verify``: prove that a checkpoint gives transformers' (and sentence-transformers') numbers.

:func:`verify` loads one checkpoint folder twice — in bertzoo, once per attention
implementation, and in transformers (eager attention, float32: the reference definition) — runs
both on the same token ids of a built-in set of varied texts (:data:`TEXTS`, :data:`PAIRS`:
empty, one letter, long past the maximum length, accents, CJK, emoji, control characters, text
pairs, ``[MASK]`` in the text), in two batch layouts (one padding-heavy mixed batch, and
length-sorted batches), and compares every output on real tokens only:

- the trunk's ``last_hidden_state`` and ``pooler_output`` against transformers' ``BertModel``;
- the head's outputs (``logits``, ``start_logits``, ``prediction_logits``, ...) against the
  transformers class named by ``config.json``'s ``architectures`` (the head bertzoo's
  ``head="auto"`` picks);
- for a sentence-transformers folder (``modules.json``): ``sentence_embedding`` against
  ``SentenceTransformer.encode`` (which tokenizes and batches on its own);
- the token ids themselves against the reference tokenizer (transformers' ``AutoTokenizer``, or
  sentence-transformers' own).

Each comparison reports the largest absolute difference, and the minimum and mean cosine
similarity over rows (one row per real token for per-token outputs, one per text otherwise),
and passes when both are within :data:`TOLERANCES` for the dtype bertzoo ran in. In float32:

- ``max |diff| <= 1e-4 * max(1, max |reference|)`` — absolute for outputs of order one, relative
  for larger ones (MLM logits reach tens, where float32 rounding alone is ~1e-5);
- ``cosine >= 0.99999`` for every row.

transformers (and sentence-transformers) are dev extras, imported only here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bertzoo.errors import BertzooError, CheckpointError, InputError

logger = logging.getLogger(__name__)

# -- what is compared ---------------------------------------------------------------------------------


class MissingDependencyError(BertzooError):
    """A package verify needs (transformers, sentence-transformers) is not installed."""


@dataclass(frozen=True)
class Tolerance:
    """Pass thresholds of one comparison.

    Attributes:
        max_abs: largest allowed ``|ours - reference|``, multiplied by ``max(1, max |reference|)``.
        min_cosine: smallest allowed cosine similarity of any row.
    """

    max_abs: float
    min_cosine: float

    def allowed_abs(self, scale: float) -> float:
        return self.max_abs * max(1.0, scale)

    def __str__(self) -> str:
        return f"max |diff| <= {self.max_abs:g} x max(1, max |reference|); cosine >= {self.min_cosine:g} on every row"


# bertzoo in this dtype vs the float32 reference. Half precision keeps ~3 significant digits
# (bf16: 8 mantissa bits), so its bounds say "same model", not "same bits". Measured on
# all-MiniLM-L6-v2 (CPU, every built-in attention): float16 max |diff| 1e-3 relative, cosine
# min 0.999995; bfloat16 1e-2 relative, cosine min 0.9997. The bounds leave room for deeper models.
TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(max_abs=1e-4, min_cosine=0.99999),
    "float16": Tolerance(max_abs=1e-2, min_cosine=0.9995),
    "bfloat16": Tolerance(max_abs=5e-2, min_cosine=0.995),
}

# A paragraph long enough (~700 WordPiece tokens) to pass any BERT's 512 positions.
_LONG = " ".join(
    f"Paragraph sentence {i}: the committee reviewed budget line {i * 7} and approved it with "
    f"amendments, while observers noted the weather ({i % 5 + 18} degrees) and the late hour."
    for i in range(30)
)

TEXTS: tuple[str, ...] = (
    "",
    "a",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Crème brûlée, naïve façade, São Paulo and Zürich: déjà vu at the café.",
    "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다.",
    "Launch day 🚀🚀 went great 👍🏽, pizza 🍕 for everyone! ❤️",
    "Привет, мир! مرحبا بالعالم. Γειά σου κόσμε.",
    "def f(x): return x ** 2  # 3.14159, 1e-10, v2.13.0, https://example.com/a?b=c&d=%20",
    "WHY?!? Well... it's (complicated) -- [really] {truly} <seriously>.",
    "  tabs\tand\nnewlines\r\n  and   spaces\u00a0\u200b everywhere  ",
    "[MASK] is the capital of France.",
    "the " * 60,
    "Transformers read text as subword pieces; rare words such as antidisestablishmentarianism or "
    "pneumonoultramicroscopicsilicovolcanoconiosis split into many of them.",
    _LONG,
)

PAIRS: tuple[tuple[str, str], ...] = (
    ("How old are you?", "I am thirty-two years old."),
    ("Where is the Eiffel Tower?", "The Eiffel Tower is in Paris, France."),
    ("", "The first text of this pair is empty."),
    ("日本語の質問ですか？", "はい、そうです。"),
    ("Summarise the following report.", _LONG),
)

# Outputs that hold one value (or vector) per token: compared on real tokens only.
_TOKEN_OUTPUTS = frozenset({"last_hidden_state", "token_embeddings", "start_logits", "end_logits",
                            "prediction_logits"})
_TOKEN_LOGIT_HEADS = frozenset({"masked-lm", "causal-lm", "token-classification"})
_SKIPPED_FIELDS = frozenset({"loss", "hidden_states", "attentions", "cross_attentions", "past_key_values",
                             "cache", "token_embeddings"})


@dataclass
class Comparison:
    """One output of one bertzoo attention implementation against its reference.

    Attributes:
        attention: the bertzoo attention (full name) or the label of a model given to :func:`verify`.
        output: the output field (``last_hidden_state``, ``pooler_output``, ``logits``, ...).
        reference: ``"transformers"`` or ``"sentence-transformers"``.
        rows: how many rows were compared (real tokens, or texts), over all batch layouts.
        max_abs_diff: the largest ``|ours - reference|``.
        cosine_min: the smallest cosine similarity of a row.
        cosine_mean: the mean cosine similarity over rows.
        scale: ``max |reference|`` (the tolerance scales with it above 1).
        tolerance: the thresholds applied.
    """

    attention: str
    output: str
    reference: str
    rows: int
    max_abs_diff: float
    cosine_min: float
    cosine_mean: float
    scale: float
    tolerance: Tolerance

    @property
    def allowed_abs(self) -> float:
        return self.tolerance.allowed_abs(self.scale)

    @property
    def passed(self) -> bool:
        # `not (x > bound)` would pass NaN; spell out the comparisons so NaN fails
        return (self.rows > 0 and self.max_abs_diff <= self.allowed_abs
                and self.cosine_min >= self.tolerance.min_cosine)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["allowed_abs"] = self.allowed_abs
        out["passed"] = self.passed
        return out


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


# -- the arithmetic -------------------------------------------------------------------------------------


@dataclass
class _Stats:
    """Running statistics of one (attention, output) over batches."""

    rows: int = 0
    max_abs: float = 0.0
    cos_min: float = 1.0
    cos_sum: float = 0.0
    scale: float = 0.0

    def add(self, ours: Tensor, reference: Tensor) -> None:
        """``ours``/``reference``: (N, D) rows. NaN anywhere makes the comparison fail."""
        a, b = ours.detach().to("cpu", torch.float64), reference.detach().to("cpu", torch.float64)
        if a.shape != b.shape:
            raise InputError(f"output shapes differ: bertzoo {tuple(a.shape)} vs reference {tuple(b.shape)}")
        if a.numel() == 0:
            return
        diff = float((a - b).abs().max()) if not (a.isnan().any() or b.isnan().any()) else float("nan")
        cos = torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-30)
        # two all-zero rows are identical (cosine_similarity would say 0)
        both_zero = (a.abs().amax(-1) == 0) & (b.abs().amax(-1) == 0)
        cos = torch.where(both_zero, torch.ones_like(cos), cos)
        self.rows += a.shape[0]
        self.max_abs = diff if diff != diff else max(self.max_abs, diff)  # keep NaN once seen
        self.cos_min = float(cos.min()) if cos.isnan().any() else min(self.cos_min, float(cos.min()))
        self.cos_sum += float(cos.sum())
        self.scale = max(self.scale, float(b.abs().max()))

    def comparison(self, attention: str, output: str, reference: str, tolerance: Tolerance) -> Comparison:
        mean = self.cos_sum / self.rows if self.rows else float("nan")
        return Comparison(attention, output, reference, self.rows, self.max_abs, self.cos_min, mean,
                          self.scale, tolerance)


def rows_of(output: Tensor, token_mask: Tensor | None) -> Tensor:
    """An output as (rows, features) for comparison.

    Args:
        output: ``(B, S, ...)`` per-token output when ``token_mask`` is given, else ``(B, ...)``.
        token_mask: ``(B, S)``, nonzero on real tokens; None for per-text outputs.

    Returns:
        ``(real tokens, features)`` for per-token vectors (``(B, S, D)``); ``(B, S)`` with padding
        zeroed for per-token scalars (``start_logits``: one row per text); ``(B, features)`` otherwise.
    """
    if token_mask is None:
        return output.reshape(output.shape[0], -1)
    real = token_mask.to(device=output.device).bool()
    if output.dim() == 2:
        return output.masked_fill(~real, 0)
    return output[real].reshape(int(real.sum()), -1)


def compare(
    attention: str,
    output: str,
    ours: Sequence[Tensor],
    reference: Sequence[Tensor],
    *,
    token_masks: Sequence[Tensor | None] | None = None,
    reference_name: str = "transformers",
    tolerance: Tolerance = TOLERANCES["float32"],
) -> Comparison:
    """Compare one output over several batches.

    Args:
        attention: label of the bertzoo side (an attention name).
        output: the output's name.
        ours: bertzoo's output per batch, e.g. ``(B, S, H)`` or ``(B, H)``.
        reference: the reference's output per batch, same shapes.
        token_masks: per batch, the ``(B, S)`` mask of real tokens for per-token outputs (None
            entries, or None, for per-text outputs).
        reference_name: label of the reference.
        tolerance: thresholds.

    Raises:
        InputError: the batches or shapes do not line up.
    """
    if len(ours) != len(reference):
        raise InputError(f"{output}: {len(ours)} bertzoo batches vs {len(reference)} reference batches")
    masks = list(token_masks) if token_masks is not None else [None] * len(ours)
    stats = _Stats()
    for a, b, m in zip(ours, reference, masks, strict=True):
        stats.add(rows_of(a, m), rows_of(b, m))
    return stats.comparison(attention, output, reference_name, tolerance)


# -- inputs ---------------------------------------------------------------------------------------------


@dataclass
class _Batch:
    layout: str
    indices: list[int]  # positions in the list of inputs
    inputs: dict[str, Tensor]  # input_ids / attention_mask / token_type_ids, (B, S) or (B, C, S)
    token_mask: Tensor  # (B, S) real tokens of the trunk view (flattened choices for multiple choice)


def _layouts(lengths: Sequence[int], batch_size: int) -> dict[str, list[list[int]]]:
    """Two batch layouts of the inputs: all at once (the padding-heaviest batch), and sorted by
    length in chunks of ``batch_size`` (what a length-sorting runner does)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return {
        "mixed": [list(range(len(lengths)))],
        "sorted": [order[i:i + batch_size] for i in range(0, len(order), batch_size)],
    }


def _choices(texts: Sequence[str], pairs: Sequence[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Inputs of a multiple-choice head: each text or pair becomes a question with two answers."""
    out = [[(t, "Yes, that is right."), (t, "No, that is wrong.")] for t in texts]
    out += [[(a, b), (a, "None of the above.")] for a, b in pairs]
    return out


# -- references ------------------------------------------------------------------------------------------


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError(
            "bertzoo verify compares against HuggingFace transformers, which is not installed; "
            "pip install transformers (or pip install 'bertzoo[dev]')"
        ) from None
    return transformers


def _import_sentence_transformers() -> Any:
    try:
        import sentence_transformers
    except ImportError:
        raise MissingDependencyError(
            "this is a sentence-transformers folder (modules.json) and bertzoo verify compares its embeddings "
            "against sentence-transformers, which is not installed; pip install sentence-transformers"
        ) from None
    return sentence_transformers


@contextmanager
def _quiet_transformers(transformers: Any) -> Iterator[None]:
    """Silence transformers' load reports while the reference loads (bertzoo reports its own)."""
    hf_logging = transformers.utils.logging
    before, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)
        if bars:
            hf_logging.enable_progress_bar()


def _reference_class(transformers: Any, config: Mapping[str, Any], st: bool) -> tuple[str, Any]:
    if st:
        return "BertModel", transformers.BertModel
    architectures = config.get("architectures") or ["BertModel"]
    name = str(architectures[0])
    cls = getattr(transformers, name, None)
    if cls is None or not name.startswith("Bert"):
        raise CheckpointError(
            f"config.json names architecture {name!r}, which is not a BERT class of transformers "
            f"{transformers.__version__}; bertzoo verify compares BERT checkpoints only"
        )
    return name, cls


def _load_reference(transformers: Any, cls: Any, folder: Path, device: torch.device) -> nn.Module:
    with _quiet_transformers(transformers):
        model, info = cls.from_pretrained(
            str(folder), attn_implementation="eager", dtype=torch.float32, output_loading_info=True
        )
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise CheckpointError(
            f"transformers' {cls.__name__} finds no weights for {len(missing)} key(s) in {str(folder)!r} "
            f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}) and would initialise them at "
            "random, so there is nothing to compare them with; verify a checkpoint that holds every weight "
            "of its architecture"
        )
    return model.to(device).eval()


def _tensor_fields(output: Any) -> dict[str, Tensor]:
    items = output.items() if hasattr(output, "items") else []
    return {k: v for k, v in items if isinstance(v, Tensor) and k not in _SKIPPED_FIELDS}


def _is_token_output(name: str, head: str | None) -> bool:
    return name in _TOKEN_OUTPUTS or (name == "logits" and head in _TOKEN_LOGIT_HEADS)


# -- the run --------------------------------------------------------------------------------------------


def _trunk(model: nn.Module) -> nn.Module:
    bert = getattr(model, "bert", None)
    return bert if isinstance(bert, nn.Module) else model


def _hf_trunk(model: nn.Module) -> nn.Module:
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) else model


@torch.inference_mode()
def _run(model: nn.Module, trunk: nn.Module, batches: Sequence[_Batch], device: torch.device,
         with_head: bool) -> list[dict[str, Tensor]]:
    """Per batch: the trunk's outputs, plus the head's (when ``with_head``), all on the CPU.

    The trunk's outputs are caught by a forward hook during the head's call, so each batch runs once.
    """
    captured: list[Any] = []
    hook = trunk.register_forward_hook(lambda _module, _args, output: captured.append(output))
    results = []
    try:
        for batch in batches:
            inputs = {k: v.to(device) for k, v in batch.inputs.items()}
            captured.clear()
            head_out = model(**inputs, return_dict=True)
            trunk_out = captured[-1] if captured else head_out
            if not hasattr(trunk_out, "last_hidden_state"):  # a head that called its trunk for a tuple
                flat = {k: v.reshape(-1, v.shape[-1]) for k, v in inputs.items()}  # multiple choice: (B*C, S)
                trunk_out = trunk(**flat, return_dict=True)
            out: dict[str, Tensor] = {"last_hidden_state": trunk_out.last_hidden_state}
            if getattr(trunk_out, "pooler_output", None) is not None:
                out["pooler_output"] = trunk_out.pooler_output
            if with_head and head_out is not trunk_out:
                for name, value in _tensor_fields(head_out).items():
                    out.setdefault(name, value)
            results.append({k: v.float().cpu() for k, v in out.items()})
    finally:
        hook.remove()
    return results


def _attention_names(requested: Sequence[str] | None, registry: Any) -> list[str]:
    records = registry.records("attention")
    if not requested:
        return [r.full_name for r in records if r.namespace == "bertzoo"]
    if list(requested) == ["all"]:
        return [r.full_name for r in records]
    return [registry.get("attention", name).full_name for name in requested]


def verify(
    model: str | os.PathLike[str],
    *,
    attentions: Sequence[str] | None = None,
    models: Mapping[str, nn.Module] | None = None,
    texts: Sequence[str] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    device: str | torch.device | None = None,
    dtype: str = "float32",
    batch_size: int = 4,
    tolerance: Tolerance | None = None,
    revision: str | None = None,
    registry: Any = None,
    progress: Callable[[str], None] | None = None,
) -> VerifyReport:
    """Compare a checkpoint in bertzoo with transformers (and sentence-transformers) on varied texts.

    Args:
        model: a checkpoint folder (HF or sentence-transformers) or a hub id (cache first).
        attentions: bertzoo attention names to compare (default: bertzoo's built-in ones able to
            serve the model; ``["all"]``: every registered one).
        models: instead of loading the folder in bertzoo, compare these models (label → model),
            e.g. a model you modified in memory. They must take the folder's inputs.
        texts: single texts (default :data:`TEXTS`).
        pairs: text pairs, used when the checkpoint is not a sentence-transformers folder
            (default :data:`PAIRS`).
        device: where both sides run (default cpu).
        dtype: bertzoo's dtype, ``float32``, ``bfloat16`` or ``float16``; the reference runs in float32.
        batch_size: size of the length-sorted batches.
        tolerance: thresholds (default ``TOLERANCES[dtype]``).
        revision: branch, tag or commit for hub ids.
        registry: the registry to build from (default: the installed plugins).
        progress: called with a short line as each stage starts (the CLI prints them on stderr).

    Raises:
        CheckpointError: the folder does not exist or cannot be loaded, or lacks weights of its architecture.
        MissingDependencyError: transformers (or, for a sentence-transformers folder,
            sentence-transformers) is not installed.
        InputError: an unknown dtype or empty inputs.
    """
    from bertzoo.checkpoint import _DTYPES, from_pretrained, read_sentence_transformers_info
    from bertzoo.discovery import get_registry
    from bertzoo.hub import resolve_model_dir
    from bertzoo.tokenizer import Tokenizer

    started = time.perf_counter()
    say = progress or (lambda line: None)
    dtype_name = str(dtype).replace("torch.", "")
    dtype_name = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}.get(
        dtype_name, dtype_name)
    if dtype_name not in TOLERANCES:
        raise InputError(f"dtype {dtype!r} is not one verify can judge; use one of {', '.join(TOLERANCES)}")
    tolerance = tolerance or TOLERANCES[dtype_name]
    torch_device = torch.device(device or "cpu")
    registry = registry or get_registry()

    folder = resolve_model_dir(model, revision)
    transformers = _import_transformers()
    st_info = read_sentence_transformers_info(folder)
    is_st = st_info is not None
    st_module = _import_sentence_transformers() if is_st else None
    model_dir = st_info.transformer_path if st_info is not None else folder
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{str(model_dir)!r} has no config.json; point verify at a checkpoint folder")
    import json

    config = json.loads(config_file.read_text(encoding="utf-8"))
    ref_name, ref_cls = _reference_class(transformers, config, is_st)

    # -- inputs: the same token ids go into both models --------------------------------------------------
    texts = list(TEXTS if texts is None else texts)
    pairs = [] if is_st else list(PAIRS if pairs is None else pairs)
    if not texts and not pairs:
        raise InputError("verify needs at least one text or pair to compare")
    tokenizer = Tokenizer.from_folder(model_dir if (model_dir / "tokenizer.json").is_file()
                                      or (model_dir / "vocab.txt").is_file() else folder)
    items: list[Any] = [*texts, *pairs]

    # bertzoo: one model per attention implementation (or the models given)
    say(f"loading {model} in bertzoo")
    loaded: dict[str, nn.Module] = {}
    skipped: dict[str, str] = {}
    if models is not None:
        loaded = dict(models)
    else:
        from bertzoo.errors import IncompatibleComponentError

        for name in _attention_names(attentions, registry):
            try:
                loaded[name] = from_pretrained(folder, head="auto", attention=name, device=torch_device,
                                               dtype=_DTYPES[dtype_name], registry=registry)
            except IncompatibleComponentError as exc:
                skipped[name] = str(exc)
                continue
            report = getattr(loaded[name], "load_report", None)
            fresh = list(getattr(report, "newly_initialized", []) or [])
            if fresh:
                raise CheckpointError(
                    f"{str(folder)!r} lacks {len(fresh)} weight(s) of the model bertzoo builds from it "
                    f"({', '.join(fresh[:5])}{', ...' if len(fresh) > 5 else ''}), which would be random on "
                    "both sides; verify a checkpoint that holds every weight of its architecture"
                )
    first = next(iter(loaded.values()), None)
    head = _head_name(first)

    multiple_choice = head == "multiple-choice" or ref_name == "BertForMultipleChoice"
    # a multiple-choice head reads (B, C, S): each input becomes C = 2 (question, answer) pairs
    flat_items = [p for c in _choices(texts, pairs) for p in c] if multiple_choice else items
    encoded = tokenizer.encode_ids(flat_items)
    n_choices = 2 if multiple_choice else 1
    lengths = [max(encoded.lengths[i * n_choices:(i + 1) * n_choices]) for i in range(len(encoded) // n_choices)]
    layouts = _layouts(lengths, batch_size)
    batches: list[_Batch] = []
    layout_text: dict[str, str] = {}
    for layout, groups in layouts.items():
        for group in groups:
            rows = [i * n_choices + c for i in group for c in range(n_choices)]
            enc = tokenizer.encode_batch([flat_items[r] for r in rows])
            inputs = enc.model_inputs()
            if multiple_choice:
                inputs = {k: v.view(len(group), n_choices, -1) for k, v in inputs.items()}
            batches.append(_Batch(layout, group, inputs, enc.attention_mask))
        widest = max(int(b.token_mask.shape[-1]) for b in batches if b.layout == layout)
        layout_text[layout] = (f"1 batch of {len(groups[0])}, padded to {widest} tokens" if len(groups) == 1
                               else f"{len(groups)} length-sorted batches of up to {batch_size}")

    # -- references -----------------------------------------------------------------------------------
    say(f"loading the reference {ref_name} in transformers {transformers.__version__}")
    reference = _load_reference(transformers, ref_cls, model_dir, torch_device)
    versions = {"transformers": str(transformers.__version__), "torch": str(torch.__version__)}
    ref_outputs = _run(reference, _hf_trunk(reference), batches, torch_device, with_head=not is_st)
    st_embeddings: Tensor | None = None
    notes: list[str] = []
    tokenizer_check: TokenizerCheck | None = None
    if is_st:
        assert st_module is not None and st_info is not None
        versions["sentence-transformers"] = str(st_module.__version__)
        say("encoding with sentence-transformers")
        with _quiet_transformers(transformers):
            st_model = st_module.SentenceTransformer(str(folder), device=str(torch_device))
        st_embeddings = st_model.encode(texts, batch_size=batch_size, convert_to_tensor=True).float().cpu()
        tokenizer_check = _check_st_tokenizer(st_model, tokenizer, texts)
    else:
        tokenizer_check = _check_hf_tokenizer(transformers, model_dir, tokenizer, items, notes)

    # -- compare ------------------------------------------------------------------------------------------
    comparisons: list[Comparison] = []
    masks = [b.token_mask for b in batches]
    for label, ours_model in loaded.items():
        say(f"running bertzoo with {label}")
        ours = _run(ours_model, _trunk(ours_model), batches, torch_device, with_head=True)
        names = [n for n in ref_outputs[0] if n in ours[0]]
        missing = [n for n in ref_outputs[0] if n not in ours[0]]
        if missing:
            notes.append(f"{label}: bertzoo gives no {', '.join(missing)} (transformers does); not compared")
        for name in names:
            token = _is_token_output(name, head)
            comparisons.append(compare(
                label, name, [o[name] for o in ours], [r[name] for r in ref_outputs],
                token_masks=masks if token else None, tolerance=tolerance,
            ))
        if st_embeddings is not None:
            if "sentence_embedding" not in ours[0]:
                notes.append(f"{label}: no sentence_embedding output; sentence-transformers not compared")
                continue
            per_text = [st_embeddings[b.indices] for b in batches]
            comparisons.append(compare(
                label, "sentence_embedding", [o["sentence_embedding"] for o in ours], per_text,
                reference_name="sentence-transformers", tolerance=tolerance,
            ))

    return VerifyReport(
        model=os.fspath(model), folder=str(folder), kind="sentence-transformers" if is_st else "transformers",
        head=head, reference_class=ref_name, versions=versions, device=str(torch_device), dtype=dtype_name,
        max_length=tokenizer.max_length, max_length_source=tokenizer.max_length_resolution.source, inputs={"texts": len(texts), "pairs": len(pairs)},
        layouts=layout_text, tolerance=tolerance, tokenizer=tokenizer_check, comparisons=comparisons,
        skipped=skipped, notes=notes, seconds=time.perf_counter() - started,
    )


def _head_name(model: nn.Module | None) -> str | None:
    if model is None:
        return None
    spec = getattr(model, "spec", None) or getattr(_trunk(model), "spec", None)
    head = getattr(getattr(spec, "components", None), "head", None)
    return None if head is None else str(head.name).split(":")[-1]


def _check_hf_tokenizer(transformers: Any, folder: Path, tokenizer: Any, items: Sequence[Any],
                        notes: list[str]) -> TokenizerCheck | None:
    try:
        with _quiet_transformers(transformers):
            hf_tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:  # no tokenizer files, or one transformers cannot read: ids are still shared
        notes.append(f"transformers could not load a tokenizer from the folder ({type(exc).__name__}); "
                     "token ids not compared")
        return None
    ours = tokenizer.encode_ids(items).ids
    mismatched = []
    for i, item in enumerate(items):
        args = (item,) if isinstance(item, str) else tuple(item)
        ids = hf_tok(*args, truncation=True, max_length=tokenizer.max_length)["input_ids"]
        if list(ids) != list(ours[i]):
            mismatched.append(i)
    return TokenizerCheck("transformers AutoTokenizer", len(items), mismatched)


def _check_st_tokenizer(st_model: Any, tokenizer: Any, texts: Sequence[str]) -> TokenizerCheck:
    ours = tokenizer.encode_ids(texts).ids
    preprocess = getattr(st_model, "preprocess", None) or st_model.tokenize  # `tokenize` before ST 6
    features = preprocess(list(texts))
    ids, mask = features["input_ids"], features["attention_mask"].bool()
    mismatched = [i for i in range(len(texts)) if ids[i][mask[i]].tolist() != list(ours[i])]
    return TokenizerCheck("sentence-transformers", len(texts), mismatched)
