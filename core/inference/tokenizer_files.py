"""Reading a model folder's tokenizer files: the WordPiece pipeline from vocab.txt, the maximum length.

Used by :class:`bertzoo.inference.tokenizer.Tokenizer.from_folder`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from bertzoo.errors import CheckpointError, InputError

logger = logging.getLogger(__name__)

# transformers writes model_max_length = int(1e30) when a tokenizer has no limit of its own
_SANE_MODEL_MAX_LENGTH = 1_000_000

SPECIAL_DEFAULTS = {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "mask": "[MASK]", "unk": "[UNK]"}

@dataclass(frozen=True)
class MaxLengthResolution:
    """How a folder's maximum sequence length (special tokens included) was chosen.

    Attributes:
        value: the resolved maximum length.
        source: which candidate won, e.g. ``"sentence_bert_config.json max_seq_length"``.
        candidates: every candidate found, ``{source: length}``.
    """

    value: int
    source: str
    candidates: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        others = ", ".join(f"{k}={v}" for k, v in self.candidates.items())
        return f"{self.value} (from {self.source}; candidates: {others or 'none'})"


# -- files --------------------------------------------------------------------------------


def build_wordpiece(
    vocab: str | Path,
    *,
    lowercase: bool = True,
    strip_accents: bool | None = None,
    tokenize_chinese_chars: bool = True,
    special_tokens: dict[str, str] | None = None,
    extra_special_tokens: Sequence[str] = (),
) -> tokenizers.Tokenizer:
    """The BERT WordPiece pipeline from a ``vocab.txt``, as transformers' ``BertTokenizer`` builds it.

    Args:
        vocab: path of ``vocab.txt`` (one token a line; the line number is the id).
        lowercase: lower-case the text (``do_lower_case``).
        strip_accents: None = strip iff lower-casing (BERT's rule); True/False force it.
        tokenize_chinese_chars: put spaces around CJK ideographs so each is its own word.
        special_tokens: ``{"cls"|"sep"|"pad"|"mask"|"unk": token}``; BERT's names by default.
        extra_special_tokens: more tokens never split (``added_tokens_decoder`` specials).

    Raises:
        CheckpointError: the vocabulary cannot be read, or lacks the [CLS]/[SEP]/[UNK] tokens.
    """
    special = {**SPECIAL_DEFAULTS, **(special_tokens or {})}
    try:
        vocab_map = WordPiece.read_file(str(vocab))
    except Exception as err:
        raise CheckpointError(f"cannot read vocabulary {str(vocab)!r}: {err}; re-download vocab.txt") from err
    missing = [special[r] for r in ("cls", "sep", "unk") if special[r] not in vocab_map]
    if missing:
        raise CheckpointError(
            f"vocabulary {str(vocab)!r} lacks the special token(s) {missing}; "
            "set cls_token/sep_token/unk_token in tokenizer_config.json to the tokens it uses"
        )
    backend = tokenizers.Tokenizer(WordPiece(vocab_map, unk_token=special["unk"], max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=tokenize_chinese_chars,
        strip_accents=strip_accents,
        lowercase=lowercase,
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_tok, sep_tok = special["cls"], special["sep"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls_tok}:0 $A:0 {sep_tok}:0",
        pair=f"{cls_tok}:0 $A:0 {sep_tok}:0 $B:1 {sep_tok}:1",
        special_tokens=[(cls_tok, vocab_map[cls_tok]), (sep_tok, vocab_map[sep_tok])],
    )
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    # special tokens are matched in the raw text before normalisation, so "[MASK]" survives lower-casing
    specials = [tok for tok in special.values() if tok in vocab_map]
    for tok in extra_special_tokens:
        if tok in vocab_map and tok not in specials:
            specials.append(tok)
        elif tok not in vocab_map:
            # its id lives in added_tokens_decoder, which this fallback path does not reproduce
            logger.warning("special token %r is not in %s; it will be split like ordinary text", tok, vocab)
    backend.add_special_tokens([tokenizers.AddedToken(tok, special=True, normalized=False) for tok in specials])
    return backend


def resolve_max_length(
    folder: Path,
    tokenizer_config: dict[str, Any] | None = None,
    *,
    max_length: int | None = None,
    max_positions: int | None = None,
) -> MaxLengthResolution:
    """The smallest of the folder's length limits, and which file set it.

    Candidates: the model's ``max_position_embeddings`` (argument, else config.json),
    ``sentence_bert_config.json`` ``max_seq_length``, ``tokenizer_config.json`` ``model_max_length``
    (ignored when it is transformers' "no limit" placeholder). An explicit ``max_length`` wins
    but must fit the model's positions. With no candidate at all, 512 (BERT's positions).

    Raises:
        InputError: ``max_length`` is not positive or exceeds ``max_position_embeddings``.
    """
    candidates: dict[str, int] = {}
    if max_positions is not None:
        candidates["max_position_embeddings (argument)"] = int(max_positions)
    else:
        pos = _read_json(folder / "config.json").get("max_position_embeddings")
        if isinstance(pos, int) and pos > 0:
            candidates["config.json max_position_embeddings"] = pos
    seq = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    if isinstance(seq, int) and seq > 0:
        candidates["sentence_bert_config.json max_seq_length"] = seq
    tok_max = (tokenizer_config if tokenizer_config is not None else _read_json(folder / "tokenizer_config.json")).get(
        "model_max_length"
    )
    if isinstance(tok_max, (int, float)) and 0 < tok_max <= _SANE_MODEL_MAX_LENGTH:
        candidates["tokenizer_config.json model_max_length"] = int(tok_max)

    if max_length is not None:
        limit = next((v for k, v in candidates.items() if k.startswith(("config.json max_pos", "max_pos"))), None)
        if max_length <= 0 or (limit is not None and max_length > limit):
            raise InputError(
                f"max_length={max_length} is out of range for {str(folder)!r}: it must be between 1 and "
                f"the model's max_position_embeddings ({limit}); pass a smaller max_length"
            )
        return MaxLengthResolution(int(max_length), "max_length argument", candidates)
    if not candidates:
        return MaxLengthResolution(512, "default (no limit found in the folder)", candidates)
    source = min(candidates, key=lambda k: candidates[k])
    return MaxLengthResolution(candidates[source], source, candidates)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read {str(path)!r}: {err}; fix or re-download the file") from err
    return data if isinstance(data, dict) else {}


def _token_string(value: Any) -> str | None:
    # special tokens are written either as "[CLS]" or as {"content": "[CLS]", ...}
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def _special_tokens(config: dict[str, Any], special_map: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for role in SPECIAL_DEFAULTS:
        tok = _token_string(config.get(f"{role}_token")) or _token_string(special_map.get(f"{role}_token"))
        if tok:
            out[role] = tok
    return out


def _added_special_tokens(config: dict[str, Any]) -> list[str]:
    decoder = config.get("added_tokens_decoder") or {}
    return [str(v["content"]) for v in decoder.values() if isinstance(v, dict) and v.get("special") and v.get("content")]
