"""Training data: rows from CSV, JSON lines or parquet, label maps, and token ids per objective.

``read_rows(path)`` gives a list of dicts. ``encode(rows, ...)`` turns them into an :class:`Encoded`
table: token ids (and token types for pairs), a label per row, and, for token classification, word
labels aligned to word pieces through the tokenizer's word ids (the first piece of each word
carries the word's label, the others ``-100`` unless ``label_all_tokens``; special tokens ``-100``).

Labels: string class labels become ``id2label`` (sorted names; ``"O"`` first for tag sets);
integer labels keep their value as the class id; float labels mean regression; a list of names (or
of 0/1 numbers) per row means multi-label.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertzoo.errors import InputError

IGNORE = -100  # label id the losses skip (padding, special tokens, non-first word pieces)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every row of a ``.csv``/``.tsv``, ``.jsonl``/``.json`` or ``.parquet`` file, as dicts.

    Raises:
        InputError: an unknown extension, a malformed line (named by its number), or an empty file.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with p.open(newline="", encoding="utf-8") as f:
            rows: list[dict[str, Any]] = list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
    elif suffix in (".jsonl", ".json", ".ndjson"):
        rows = _read_json(p)
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise InputError(f"reading {p.name} needs pyarrow: pip install pyarrow (or convert it to JSON lines)") from exc
        rows = pq.read_table(p).to_pylist()
    else:
        raise InputError(f"{str(p)!r}: unknown data format {suffix!r}; use .csv, .tsv, .jsonl or .parquet")
    if not rows:
        raise InputError(f"{str(p)!r} holds no rows; give a file with at least one example")
    return rows


def _read_json(p: Path) -> list[dict[str, Any]]:
    text = p.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):  # one JSON array
        data = json.loads(text)
        return [dict(r) for r in data]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{p.name} line {number} is not JSON ({exc.msg}); write one JSON object per line") from exc
        if not isinstance(row, dict):
            raise InputError(f"{p.name} line {number} is a {type(row).__name__}; each line must be a JSON object")
        rows.append(row)
    return rows


def column(rows: Sequence[dict[str, Any]], name: str, source: str) -> list[Any]:
    """The ``name`` field of every row; a missing field raises naming the fields the rows have."""
    out = []
    for i, row in enumerate(rows):
        if name not in row or row[name] is None:
            raise InputError(
                f"{source}: row {i + 1} has no field {name!r} (it has {', '.join(map(str, row)) or 'none'}); "
                f"name the right one with --text-field / --text-pair-field / --label-field"
            )
        out.append(row[name])
    return out


# -- labels ----------------------------------------------------------------------------------------


@dataclass
class LabelSpace:
    """How labels map to model outputs: ``problem_type`` (HF's names) and ``id2label``."""

    problem_type: str
    id2label: dict[int, str]

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in self.id2label.items()}

    @property
    def num_labels(self) -> int:
        return len(self.id2label)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_number(value: Any) -> float | None:
    if _is_number(value):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def sequence_labels(values: Sequence[Any], problem_type: str | None) -> LabelSpace:
    """The label space of a sequence-classification column (``problem_type`` None = inferred)."""
    multi = problem_type == "multi_label_classification" or (
        problem_type is None and all(isinstance(v, (list, tuple)) for v in values))
    if multi:
        items = [_split_multi(v) for v in values]
        widths = {len(row) for row in items}
        if len(widths) == 1 and widths != {0} and all(all(_is_number(x) for x in row) for row in items):  # 0/1 vectors
            width = len(items[0])
            return LabelSpace("multi_label_classification", {i: f"LABEL_{i}" for i in range(width)})
        return LabelSpace("multi_label_classification", dict(enumerate(sorted({str(x) for row in items for x in row}))))
    numbers = [_as_number(v) for v in values]
    if problem_type == "regression" or (problem_type is None and all(n is not None for n in numbers)
                                        and any(n is not None and not float(n).is_integer() for n in numbers)):
        if any(n is None for n in numbers):
            bad = next(v for v, n in zip(values, numbers, strict=True) if n is None)
            raise InputError(f"regression needs numeric labels; got {bad!r}")
        return LabelSpace("regression", {0: "LABEL_0"})
    if all(n is not None for n in numbers) and all(_is_number(v) or str(v).strip().lstrip("-").isdigit() for v in values):
        ids = {int(n) for n in numbers if n is not None}
        if min(ids) < 0:
            raise InputError(f"integer class labels must be 0 or more; got {min(ids)}")
        return LabelSpace("single_label_classification", {i: f"LABEL_{i}" for i in range(max(max(ids) + 1, 2))})
    return LabelSpace("single_label_classification", dict(enumerate(sorted({str(v) for v in values}))))


def _split_multi(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [s.strip() for s in str(value).split(",") if s.strip()]  # CSV cells: "a,b"


def sequence_targets(values: Sequence[Any], space: LabelSpace, source: str) -> list[Any]:
    """Each row's target: a class id, a float (regression) or a 0/1 vector (multi-label)."""
    out: list[Any] = []
    names = space.label2id
    for i, value in enumerate(values):
        try:
            if space.problem_type == "regression":
                out.append(float(value))
            elif space.problem_type == "multi_label_classification":
                items = _split_multi(value)
                if items and len(items) == space.num_labels and all(_is_number(x) for x in items):
                    out.append([float(x) for x in items])
                else:
                    vector = [0.0] * space.num_labels
                    for name in items:
                        vector[names[str(name)]] = 1.0
                    out.append(vector)
            elif str(value) in names:
                out.append(names[str(value)])
            else:
                label = int(float(value))
                if not 0 <= label < space.num_labels:
                    raise KeyError(value)
                out.append(label)
        except (KeyError, ValueError) as exc:
            raise InputError(
                f"{source}: row {i + 1} has label {value!r}, which the training labels "
                f"({', '.join(space.id2label.values())}) do not contain; fix the label or add it to the training file"
            ) from exc
    return out


def tag_labels(values: Sequence[Sequence[Any]]) -> LabelSpace:
    """The label space of word tags: sorted names with ``"O"`` first."""
    names = sorted({str(t) for tags in values for t in tags}, key=lambda n: (n != "O", n))
    return LabelSpace("token_classification", dict(enumerate(names)))


# -- encoded tables -----------------------------------------------------------------------------------


@dataclass
class Encoded:
    """Token ids of every row plus what the objective needs (columns of equal length).

    ``ids``/``type_ids``: the (first) input; ``ids2``: the second input of two-tower objectives
    (sentence-embedding positives); ``labels``: per-row targets, or per-piece ids for token
    classification; ``words``: token classification's per-row word tags, for entity metrics;
    ``groups``: rerank's query of each row, for MRR.
    """

    ids: list[list[int]]
    labels: list[Any]
    type_ids: list[list[int]] | None = None
    ids2: list[list[int]] | None = None
    words: list[list[int]] | None = None
    groups: list[str] | None = None
    first: list[list[int]] | None = None  # token classification: each kept word's first piece
    lengths: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lengths = [len(a) + (len(self.ids2[i]) if self.ids2 is not None else 0) for i, a in enumerate(self.ids)]

    def __len__(self) -> int:
        return len(self.ids)


def encode_texts(tokenizer: Any, rows: Sequence[dict[str, Any]], text_field: str, pair_field: str | None,
                 max_length: int | None, source: str) -> tuple[list[list[int]], list[list[int]] | None]:
    """Token ids (and token types when rows are pairs) of the text column(s)."""
    texts = [str(t) for t in column(rows, text_field, source)]
    inputs: list[Any] = texts
    if pair_field is not None:
        pairs = [str(t) for t in column(rows, pair_field, source)]
        inputs = list(zip(texts, pairs, strict=True))
    encoded = tokenizer.encode_ids(inputs, max_length=max_length)
    return encoded.ids, encoded.type_ids


def encode_words(tokenizer: Any, words: Sequence[Sequence[str]], tags: Sequence[Sequence[int]], *,
                 max_length: int | None, label_all_tokens: bool) -> tuple[list[list[int]], list[list[int]], list[list[int]], list[list[int]]]:
    """Word pieces of pre-split words, their labels aligned through word ids, the word tags kept
    after truncation and the position of each kept word's first piece (for word-level metrics)."""
    # the Rust tokenizer keeps truncation as state; Tokenizer._set_truncation keeps its cache in step
    tokenizer._set_truncation(max_length if max_length is not None else tokenizer.max_length, True)
    encodings = tokenizer.backend.encode_batch([list(w) for w in words], is_pretokenized=True)
    ids, labels, kept, first = [], [], [], []
    for enc, row_tags in zip(encodings, tags, strict=True):
        row_labels: list[int] = []
        starts: list[int] = []
        previous = None
        for position, word in enumerate(enc.word_ids):
            if word is not None and word != previous:
                starts.append(position)
            if word is None:
                row_labels.append(IGNORE)
            elif word != previous or label_all_tokens:
                row_labels.append(int(row_tags[word]))
            else:
                row_labels.append(IGNORE)
            previous = word
        ids.append(list(enc.ids))
        labels.append(row_labels)
        first.append(starts)
        kept.append([int(row_tags[enc.word_ids[s]]) for s in starts])
    return ids, labels, kept, first


def split_words(value: Any) -> list[str]:
    """A row's words: a list as given, or a string split on whitespace."""
    return [str(w) for w in value] if isinstance(value, (list, tuple)) else str(value).split()


__all__ = [
    "IGNORE", "Encoded", "LabelSpace", "column", "encode_texts", "encode_words", "read_rows", "sequence_labels",
    "sequence_targets", "split_words", "tag_labels",
]
