"""Reading a model folder's tokenizer files: pipelines built from vocabulary files, special tokens,
token types, the maximum length.

Used by :class:`bertzoo.inference.tokenizer.Tokenizer.from_folder`. Without ``tokenizer.json``:
``vocab.txt`` builds BERT's WordPiece pipeline, ``vocab.json`` + ``merges.txt`` RoBERTa's
byte-level BPE (``<s> A </s></s> B </s>``); a SentencePiece model alone is refused with the
command that writes ``tokenizer.json``.
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
from tokenizers.models import BPE, WordPiece

from bertzoo.errors import CheckpointError, InputError

logger = logging.getLogger(__name__)

# transformers writes model_max_length = int(1e30) when a tokenizer has no limit of its own
_SANE_MODEL_MAX_LENGTH = 1_000_000

SPECIAL_DEFAULTS = {"cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "mask": "[MASK]", "unk": "[UNK]"}
# fairseq-style names (RoBERTa, XLM-R, ...), used for a role whose BERT name is not in the vocabulary
SPECIAL_ALTERNATES = {"cls": "<s>", "sep": "</s>", "pad": "<pad>", "mask": "<mask>", "unk": "<unk>"}
BYTE_LEVEL_DEFAULTS = dict(SPECIAL_ALTERNATES)
SENTENCEPIECE_FILES = ("sentencepiece.bpe.model", "spiece.model", "tokenizer.model")

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


def build_byte_level_bpe(
    vocab: str | Path,
    merges: str | Path,
    *,
    special_tokens: dict[str, str] | None = None,
    add_prefix_space: bool = False,
    trim_offsets: bool = True,
    extra_special_tokens: Sequence[str] = (),
) -> tokenizers.Tokenizer:
    """RoBERTa's byte-level BPE from ``vocab.json`` + ``merges.txt``, as transformers' ``RobertaTokenizer``
    builds it: BPE (no prefix/suffix, no unk fusing) → ByteLevel pre-tokenizer and decoder →
    ``RobertaProcessing`` (``<s> A </s>``, pair ``<s> A </s></s> B </s>``, type ids all 0).

    Raises:
        CheckpointError: a file cannot be read, or the vocabulary lacks ``<s>`` / ``</s>``.
    """
    special = {**BYTE_LEVEL_DEFAULTS, **(special_tokens or {})}
    try:
        vocab_map, merge_list = BPE.read_file(str(vocab), str(merges))
    except Exception as err:
        raise CheckpointError(
            f"cannot read {str(vocab)!r} / {str(merges)!r}: {err}; re-download vocab.json and merges.txt"
        ) from err
    missing = [special[r] for r in ("cls", "sep") if special[r] not in vocab_map]
    if missing:
        raise CheckpointError(
            f"vocabulary {str(vocab)!r} lacks the special token(s) {missing}; set cls_token/sep_token in "
            "tokenizer_config.json to the tokens it uses"
        )
    backend = tokenizers.Tokenizer(BPE(vocab_map, merge_list, continuing_subword_prefix="", end_of_word_suffix="",
                                       fuse_unk=False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    backend.decoder = decoders.ByteLevel()
    cls_tok, sep_tok = special["cls"], special["sep"]
    backend.post_processor = processors.RobertaProcessing(
        (sep_tok, vocab_map[sep_tok]), (cls_tok, vocab_map[cls_tok]), trim_offsets=trim_offsets,
        add_prefix_space=add_prefix_space,
    )
    specials = [tok for tok in dict.fromkeys([*special.values(), *extra_special_tokens]) if tok in vocab_map]
    backend.add_special_tokens([tokenizers.AddedToken(tok, special=True, normalized=False) for tok in specials])
    return backend


def sentencepiece_only_error(folder: Path) -> CheckpointError | None:
    """The error for a folder whose tokenizer is a SentencePiece model without ``tokenizer.json``, or None."""
    found = [name for name in SENTENCEPIECE_FILES if (folder / name).is_file()]
    if not found:
        return None
    return CheckpointError(
        f"{str(folder)!r} has a SentencePiece tokenizer ({found[0]}) but no tokenizer.json; bertzoo reads "
        "tokenizer.json only (no sentencepiece dependency). Write it once with transformers: python -c "
        f"\"from transformers import AutoTokenizer; AutoTokenizer.from_pretrained({str(folder)!r})"
        f".save_pretrained({str(folder)!r})\""
    )


def resolve_specials(backend: tokenizers.Tokenizer, given: dict[str, str]) -> dict[str, str]:
    """The special token of each role: the folder's own (``given``), else BERT's name when the
    vocabulary has it, else the fairseq name (``<s>``, ``</s>``, ``<pad>``, ``<mask>``, ``<unk>``)
    when it has that: a tokenizer.json without tokenizer_config.json still finds RoBERTa's tokens."""
    out = dict(given)
    for role, bert_name in SPECIAL_DEFAULTS.items():
        if role in out or backend.token_to_id(bert_name) is not None:
            continue
        if backend.token_to_id(SPECIAL_ALTERNATES[role]) is not None:
            out[role] = SPECIAL_ALTERNATES[role]
    return out


def folder_family(config: dict[str, Any]) -> Any:
    """The registered :class:`~bertzoo.family.Family` of a ``config.json`` dict's ``model_type``, or
    None (no model_type, or a family no plugin registers)."""
    from bertzoo.discovery import get_registry
    from bertzoo.errors import BertzooError
    from bertzoo.family import get_family

    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        return None
    try:
        return get_family(model_type, get_registry())
    except BertzooError:
        return None


def takes_token_types(folder: Path) -> bool:
    """Whether the folder's model family takes token type ids (``Family.token_types``); True when
    there is no config or the family is unknown."""
    family = folder_family(_read_json(folder / "config.json"))
    return True if family is None else bool(family.token_types)


def resolve_max_length(
    folder: Path,
    tokenizer_config: dict[str, Any] | None = None,
    *,
    max_length: int | None = None,
    max_positions: int | None = None,
) -> MaxLengthResolution:
    """The smallest of the folder's length limits, and which file set it.

    Candidates: the model's ``max_position_embeddings`` (argument, else config.json, less
    ``pad_token_id + 1`` for families whose positions count from the pad id, ``Family.positions_from_pad``:
    RoBERTa's 514 give 512), ``sentence_bert_config.json`` ``max_seq_length``, ``tokenizer_config.json`` ``model_max_length``
    (ignored when it is transformers' "no limit" placeholder). An explicit ``max_length`` wins
    but must fit the model's positions. With no candidate at all, 512 (BERT's positions).

    Raises:
        InputError: ``max_length`` is not positive or exceeds ``max_position_embeddings``.
    """
    candidates: dict[str, int] = {}
    if max_positions is not None:
        candidates["max_position_embeddings (argument)"] = int(max_positions)
    else:
        config = _read_json(folder / "config.json")
        pos = config.get("max_position_embeddings")
        if isinstance(pos, int) and pos > 0:
            pad = config.get("pad_token_id")
            from_pad = bool(getattr(folder_family(config), "positions_from_pad", False))
            if from_pad and isinstance(pad, int) and 0 <= pad < pos:
                candidates["config.json max_position_embeddings - pad_token_id - 1"] = pos - pad - 1
            else:
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
