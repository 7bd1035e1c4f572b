"""The model card (``README.md``) a bertzoo save writes: the spec, the source checkpoint, the
sentence-transformers settings of an embedding model, and the parity figures of ``bertzoo verify``.

Parity figures come from a :class:`bertzoo.verify.VerifyReport` (or its ``as_dict()``, which is
what ``bertzoo verify --json`` prints), in one of two ways:

- ``save_pretrained(folder, verify_report=report)`` puts them in the card it writes (the card
  names the folder the report verified: the save's source, or the folder itself);
- :func:`record_verification` rewrites the parity section of a saved folder's card from a report
  of *that* folder, for the flow "save, verify the saved folder, record"::

      model.save_pretrained("out")
      record_verification("out", bertzoo.verify.verify("out"))

A card bertzoo did not write (no :data:`CARD_MARKER`) is never overwritten by a save.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bertzoo._fs import atomic_write_text
from bertzoo.errors import CheckpointError

CARD_FILE = "README.md"
CARD_MARKER = "<!-- bertzoo:model-card -->"
_PARITY_START = "<!-- bertzoo:parity -->"
_PARITY_END = "<!-- /bertzoo:parity -->"
_HUB_ID_PARTS = 2


def is_bertzoo_card(path: Path) -> bool:
    """Whether ``path`` is a card a bertzoo save wrote (and may rewrite)."""
    try:
        return CARD_MARKER in path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def report_dict(report: Any) -> dict[str, Any]:
    """A verify report as a plain dict: a :class:`~bertzoo.verify.VerifyReport`, its ``as_dict()``,
    or the path of a JSON file ``bertzoo verify --json`` wrote.

    Raises:
        CheckpointError: anything else, or a dict without the report's keys.
    """
    if isinstance(report, str | os.PathLike):
        try:
            report = json.loads(Path(report).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CheckpointError(f"cannot read the verify report {str(report)!r}: {err}; write it with "
                                  "`bertzoo verify FOLDER --json > report.json`") from err
    data = report.as_dict() if callable(getattr(report, "as_dict", None)) else report
    if not isinstance(data, dict) or not {"folder", "comparisons", "passed"} <= set(data):
        raise CheckpointError(f"verify_report must be a bertzoo.verify.VerifyReport or its as_dict(), not "
                              f"{type(report).__name__}; run bertzoo.verify.verify(folder) and pass what it returns")
    return data


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == _HUB_ID_PARTS and all(parts) and not Path(name).expanduser().exists()


def parity_section(report: dict[str, Any] | None) -> str:
    """The card's parity section (between markers, so :func:`record_verification` can replace it)."""
    if report is None:
        body = ("Not measured for this save. Run `bertzoo verify <this folder>` to compare it with transformers "
                "(and sentence-transformers) on bertzoo's built-in texts, then record the figures here with "
                "`bertzoo.checkpoint.model_card.record_verification(folder, report)`.")
        return f"{_PARITY_START}\n## Parity (bertzoo verify)\n\n{body}\n{_PARITY_END}"
    versions = ", ".join(f"{k} {v}" for k, v in (report.get("versions") or {}).items())
    verdict = "PASS" if report.get("passed") else "FAIL"
    lines = [
        _PARITY_START, "## Parity (bertzoo verify)", "",
        f"`bertzoo verify` of `{report.get('folder')}`: **{verdict}** ({report.get('dtype', 'float32')} on "
        f"{report.get('device', 'cpu')}; references: {versions or 'n/a'}; tolerance: "
        f"{(report.get('tolerance') or {}).get('rule', 'n/a')}).", "",
    ]
    tok = report.get("tokenizer")
    if tok:
        same = int(tok.get("total", 0)) - len(tok.get("mismatched") or [])
        lines += [f"Token ids identical to {tok.get('reference')} on {same}/{tok.get('total')} inputs.", ""]
    lines += ["| attention | output | reference | rows | max abs diff | min cosine | result |",
              "|---|---|---|---:|---:|---:|---|"]
    for c in report.get("comparisons") or []:
        lines.append(f"| {c.get('attention')} | {c.get('output')} | {c.get('reference')} | {c.get('rows')} | "
                     f"{float(c.get('max_abs_diff', 0.0)):.2e} | {float(c.get('cosine_min', 0.0)):.7f} | "
                     f"{'pass' if c.get('passed') else 'FAIL'} |")
    lines.append(_PARITY_END)
    return "\n".join(lines)


def _embedding_section(folder: Path) -> list[str]:
    """The sentence-transformers settings, read back from the files the save wrote into ``folder``."""
    def load(name: str) -> dict[str, Any]:
        path = folder / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    pooling = load("1_Pooling/config.json")
    mode = next((k.removeprefix("pooling_mode_").removesuffix("_tokens").removesuffix("_token")
                 for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True), "mean")
    sbert, st_config = load("sentence_bert_config.json"), load("config_sentence_transformers.json")
    prompts = st_config.get("prompts") or {}
    lines = [
        "## Embeddings (sentence-transformers layout)", "",
        f"- modules: {' → '.join(kinds)}",
        f"- dimension: {pooling.get('word_embedding_dimension')}, pooling: {mode}, "
        f"normalized: {'yes' if 'Normalize' in kinds else 'no'}",
        f"- max sequence length: {sbert.get('max_seq_length')} tokens; do_lower_case: {sbert.get('do_lower_case')}",
        f"- similarity: {st_config.get('similarity_fn_name', 'cosine')}",
    ]
    if prompts:
        lines += ["- prompts (prepended to the text): " + ", ".join(f"`{k}`: {v!r}" for k, v in prompts.items()),
                  f"- default prompt: {st_config.get('default_prompt_name') or 'none'}"]
    return [*lines, ""]


def render_model_card(folder: Path, *, config: dict[str, Any], name: str, source: str | None, tokenizer: str | None,
               parameters: int, report: dict[str, Any] | None = None) -> str:
    """The card of the save in ``folder`` (its files already written: the embedding section reads them).

    Args:
        config: the ``config.json`` written.
        name: the model's name (the spec's, usually the source id).
        source: where the model was loaded from (a hub id or a folder), None when built.
        tokenizer: where the tokenizer files came from, None when the save has none.
        parameters: number of parameters.
        report: a verify report (see :func:`report_dict`), or None.
    """
    from bertzoo import __version__

    embedding = (folder / "modules.json").is_file()
    head = ((config.get("bertzoo") or {}).get("components") or {}).get("head") or {}
    base = source if source is not None and _looks_like_hub_id(source) else None
    front = ["---", f"library_name: {'sentence-transformers' if embedding else 'transformers'}",
             "tags:", "- bertzoo", f"- {config.get('model_type', 'bert')}"]
    if embedding:
        front += ["- sentence-transformers", "- feature-extraction", "- sentence-similarity",
                  "pipeline_tag: sentence-similarity"]
    if base:
        front.append(f"base_model: {base}")
    front.append("---")
    sizes = (("layers", "num_hidden_layers"), ("hidden size", "hidden_size"), ("attention heads",
             "num_attention_heads"), ("intermediate size", "intermediate_size"), ("vocabulary", "vocab_size"),
             ("max positions", "max_position_embeddings"))
    body = [CARD_MARKER, f"# {Path(name).name or name}", "",
            f"Saved by bertzoo {__version__} from {f'`{source}`' if source else 'a model built in memory'}.", "",
            "## Model", "", "| | |", "|---|---|",
            f"| family (`model_type`) | {config.get('model_type')} |",
            f"| architecture | {', '.join(config.get('architectures') or [])} |",
            f"| bertzoo head | {head.get('name') or 'none (trunk)'} {json.dumps(head.get('options') or {})} |"]
    body += [f"| {label} | {config.get(key)} |" for label, key in sizes if key in config]
    body += [f"| parameters | {parameters:,} |", f"| dtype | {config.get('dtype', 'float32')} |",
             f"| tokenizer | {tokenizer or 'NOT SAVED: copy the tokenizer files into this folder'} |", ""]
    if embedding:
        body += _embedding_section(folder)
    body += ["## Usage", "", "```python", "import bertzoo", ""]
    if embedding:
        body += ['vectors = bertzoo.embed(["a text"], model="<this folder>")', "",
                 "from sentence_transformers import SentenceTransformer",
                 'vectors = SentenceTransformer("<this folder>").encode(["a text"])']
    else:
        body += ['model = bertzoo.from_pretrained("<this folder>", head="auto")', "",
                 "from transformers import AutoModel", 'model = AutoModel.from_pretrained("<this folder>")']
    body += ["```", "", parity_section(report), ""]
    return "\n".join([*front, *body])


def record_verification(folder: str | os.PathLike[str], report: Any) -> Path:
    """Put a verify report's figures into the card of ``folder`` (atomically rewritten).

    Args:
        folder: a folder a bertzoo save wrote (its README.md carries :data:`CARD_MARKER`).
        report: a verify report of that same folder (see :func:`report_dict`).

    Raises:
        CheckpointError: the report verified another folder, or the folder has no bertzoo card.
    """
    target = Path(folder).expanduser()
    data = report_dict(report)
    if Path(str(data["folder"])).resolve() != target.resolve():
        raise CheckpointError(
            f"the verify report is of {data['folder']!r}, not of {str(target)!r}: the card states the parity of the "
            f"folder it describes; run bertzoo.verify.verify({str(target)!r}) and record that")
    card = target / CARD_FILE
    if not is_bertzoo_card(card):
        raise CheckpointError(f"{str(card)!r} is not a card a bertzoo save wrote; save the model with "
                              "save_pretrained(..., model_card=True) first")
    text = card.read_text(encoding="utf-8")
    start, end = text.find(_PARITY_START), text.find(_PARITY_END)
    section = parity_section(data)
    if start < 0 or end < start:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    else:
        text = text[:start] + section + text[end + len(_PARITY_END):]
    atomic_write_text(card, text)
    return card


__all__ = ["CARD_FILE", "CARD_MARKER", "is_bertzoo_card", "parity_section", "record_verification", "render_model_card",
           "report_dict"]
