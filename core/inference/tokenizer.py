"""Tokenization on HuggingFace ``tokenizers`` (the Rust library), shaped for batch inference.

``Tokenizer.from_folder(path)`` reads, in this order:

1. ``tokenizer.json`` — the full pipeline (WordPiece, byte-level BPE, SentencePiece Unigram, with
   the family's pair template, e.g. RoBERTa's ``<s> A </s></s> B </s>``). Its baked-in truncation
   and padding are cleared (all-MiniLM-L6-v2's file pads every text to 128 and truncates at 128,
   which is not the sentence-transformers recipe); this class applies its own per call.
2. otherwise ``vocab.txt`` + ``tokenizer_config.json`` (``do_lower_case``, ``strip_accents``,
   ``tokenize_chinese_chars``, special tokens), built into the same pipeline as transformers'
   ``BertTokenizer``: BertNormalizer → BertPreTokenizer → WordPiece → ``[CLS] A [SEP] (B [SEP])``.
3. otherwise ``vocab.json`` + ``merges.txt``: RoBERTa's byte-level BPE with ``RobertaProcessing``.
   A SentencePiece model without ``tokenizer.json`` is refused with the one-line fix.

Token type ids are returned only when the model's family takes them (``Family.token_types`` of
config.json's ``model_type``: BERT and ELECTRA yes, RoBERTa and XLM-R no, as transformers'
tokenizers); otherwise ``token_type_ids`` are zeros and left out of the model inputs.

The maximum length (special tokens included) is resolved once per folder as the smallest of the
model's ``max_position_embeddings`` (config.json), sentence-transformers' ``max_seq_length``
(sentence_bert_config.json) and the tokenizer's ``model_max_length`` when it is a real number;
``Tokenizer.max_length_resolution`` says which source won.

Two ways to encode a batch:

- ``encode_batch(texts)`` → ``BatchEncoding`` of torch tensors padded to the longest text
  (``input_ids``/``attention_mask``/``token_type_ids`` [B, T], optionally ``offsets`` [B, T, 2]).
- ``encode_ids(texts)`` → ``TokenIds``: unpadded per-text id lists plus lengths, for a runner that
  sorts by length and pads (``pad``) or packs (``pack``) each batch itself.

Both report per-text token counts (after truncation, specials included) and a truncated flag.
Encoding runs in Rust and in parallel (``encode_batch_fast`` when offsets are not needed);
Python touches each text once, never each token.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import tokenizers
import torch

from bertzoo.errors import CheckpointError, InputError
from bertzoo.inference.tokenizer_files import (
    SPECIAL_DEFAULTS,
    MaxLengthResolution,
    _added_special_tokens,
    _read_json,
    _special_tokens,
    build_byte_level_bpe,
    build_wordpiece,
    resolve_max_length,
    resolve_specials,
    sentencepiece_only_error,
    takes_token_types,
)

logger = logging.getLogger(__name__)


TextInput = str | tuple[str, str]


@dataclass
class BatchEncoding:
    """A padded batch. B = number of texts, T = longest encoded text in the batch.

    Attributes:
        input_ids: [B, T] int64, padded with the pad id.
        attention_mask: [B, T] int64, 1 on real tokens.
        token_type_ids: [B, T] int64, 1 on the second text of a pair (zeros for families
            without token types).
        lengths: [B] int64, tokens kept per text (special tokens included).
        truncated: [B] bool, whether the text lost tokens to truncation.
        offsets: [B, T, 2] int64 character spans into each original string, (0, 0) for special
            and pad tokens; None unless asked for. In a pair, spans of the second text index
            into the second string.
        has_token_types: whether the model takes ``token_type_ids`` (see ``model_inputs``).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    lengths: torch.Tensor
    truncated: torch.Tensor
    offsets: torch.Tensor | None = None
    has_token_types: bool = True

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """The keyword arguments the model's forward takes (``token_type_ids`` only if it has them)."""
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.has_token_types:
            inputs["token_type_ids"] = self.token_type_ids
        return inputs


@dataclass
class TokenIds:
    """Unpadded encodings, for a runner that sorts by length and batches itself.

    Attributes:
        ids: per-text token id lists (special tokens included).
        lengths: [N] int64 array, ``len(ids[i])``.
        truncated: [N] bool array.
        type_ids: per-text token type lists for sentence pairs; None for single texts and for
            families without token types (all zeros).
    """

    ids: list[list[int]]
    lengths: np.ndarray
    truncated: np.ndarray
    type_ids: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class FittedIds:
    """N whole texts fitted to a maximum length (see ``Tokenizer.encode_fitted``).

    Attributes:
        sequences: the M sequences to run; M = N unless long texts were split into windows.
        tokens: [N] int64, tokens of each whole text, specials included, before any cut.
        truncated: [N] bool, the text lost tokens to a cut (never when split into windows).
        owner: [M] int64, the text each sequence belongs to, in order; None when M = N and
            sequence i is text i.
    """

    sequences: TokenIds
    tokens: np.ndarray
    truncated: np.ndarray
    owner: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.tokens)


class Tokenizer:
    """A tokenizer (any ``tokenizers`` pipeline) with a resolved maximum length.

    Args:
        backend: a ``tokenizers.Tokenizer`` (its own truncation and padding are cleared).
        max_length: the resolution of the maximum length (see ``MaxLengthResolution``).
        special_tokens: ``{"cls"|"sep"|"pad"|"mask"|"unk": token string}``.
        source: where the tokenizer came from, for messages.
        token_types: whether the model takes token type ids (False: none are returned).
    """

    def __init__(
        self,
        backend: tokenizers.Tokenizer,
        max_length: MaxLengthResolution,
        special_tokens: dict[str, str] | None = None,
        source: str = "<memory>",
        token_types: bool = True,
    ) -> None:
        backend.no_truncation()
        backend.no_padding()
        self.backend = backend
        self.max_length_resolution = max_length
        self.source = source
        self.token_types = token_types
        self.special_tokens = {**SPECIAL_DEFAULTS, **(special_tokens or {})}
        ids = {role: backend.token_to_id(tok) for role, tok in self.special_tokens.items()}
        self.cls_id: int | None = ids["cls"]
        self.sep_id: int | None = ids["sep"]
        self.mask_id: int | None = ids["mask"]
        self.unk_id: int | None = ids["unk"]
        # a vocabulary without a pad token still pads with 0, as BERT's embeddings expect
        self.pad_id: int = ids["pad"] if ids["pad"] is not None else 0
        self._truncation: tuple[int, str, int] | None = None
        self._layout: tuple[int, int] | None = None

    # -- loading ----------------------------------------------------------------------------

    @classmethod
    def from_folder(
        cls, path: str | Path, max_length: int | None = None, max_positions: int | None = None,
        token_types: bool | None = None,
    ) -> Tokenizer:
        """Load the tokenizer of a model folder (HF or sentence-transformers layout).

        Args:
            path: folder with ``tokenizer.json``, or ``vocab.txt`` (+ ``tokenizer_config.json``),
                or ``vocab.json`` + ``merges.txt``.
            max_length: an explicit maximum length; must not exceed the model's positions.
            max_positions: the model's ``max_position_embeddings``; read from the folder's
                ``config.json`` when not given (less RoBERTa's position offset for its families).
            token_types: whether to return token type ids; None = as the folder's model family.

        Raises:
            CheckpointError: the folder is missing, has no tokenizer files (or only a SentencePiece
                model), or a file is unreadable.
            InputError: ``max_length`` is not positive or exceeds the model's positions.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise CheckpointError(
                f"tokenizer folder {str(folder)!r} does not exist or is not a folder; "
                "pass the model folder that holds tokenizer.json or vocab.txt"
            )
        config = _read_json(folder / "tokenizer_config.json")
        special_map = _read_json(folder / "special_tokens_map.json")
        special = _special_tokens(config, special_map)

        if (folder / "tokenizer.json").is_file():
            try:
                backend = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
            except Exception as err:  # the Rust side raises plain Exception subclasses
                raise CheckpointError(
                    f"cannot read {folder / 'tokenizer.json'}: {err}; "
                    "re-download the file or remove it to fall back to vocab.txt"
                ) from err
            source = str(folder / "tokenizer.json")
        elif (folder / "vocab.txt").is_file():
            backend = build_wordpiece(
                folder / "vocab.txt",
                lowercase=bool(config.get("do_lower_case", True)),
                strip_accents=config.get("strip_accents"),
                tokenize_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
                special_tokens=special,
                extra_special_tokens=_added_special_tokens(config),
            )
            source = str(folder / "vocab.txt")
        elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            backend = build_byte_level_bpe(
                folder / "vocab.json", folder / "merges.txt", special_tokens=special,
                add_prefix_space=bool(config.get("add_prefix_space", False)),
                trim_offsets=bool(config.get("trim_offsets", True)),
                extra_special_tokens=_added_special_tokens(config),
            )
            source = str(folder / "vocab.json")
        elif (error := sentencepiece_only_error(folder)) is not None:
            raise error
        else:
            present = sorted(p.name for p in folder.iterdir())[:12]
            raise CheckpointError(
                f"no tokenizer in {str(folder)!r}: expected tokenizer.json, vocab.txt with "
                f"tokenizer_config.json, or vocab.json with merges.txt (found: {', '.join(present) or 'nothing'}); copy the "
                "tokenizer files of the model into this folder"
            )

        resolution = resolve_max_length(folder, config, max_length=max_length, max_positions=max_positions)
        types = takes_token_types(folder) if token_types is None else bool(token_types)
        return cls(backend, resolution, resolve_specials(backend, special), source=source, token_types=types)

    # -- properties -------------------------------------------------------------------------

    @property
    def max_length(self) -> int:
        """The resolved maximum sequence length, special tokens included."""
        return self.max_length_resolution.value

    @property
    def vocab_size(self) -> int:
        return int(self.backend.get_vocab_size())

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"Tokenizer(source={self.source!r}, vocab_size={self.vocab_size}, max_length={self.max_length})"

    # -- encoding ---------------------------------------------------------------------------

    def _encode(
        self, texts: Sequence[TextInput], max_length: int | None, truncation: bool, offsets: bool
    ) -> list[tokenizers.Encoding]:
        batch = _batch_items(texts)
        self._set_truncation(max_length if max_length is not None else self.max_length, truncation)
        encode = self.backend.encode_batch if offsets else self.backend.encode_batch_fast
        return encode(batch)

    def _set_truncation(self, max_length: int, truncation: bool, strategy: str = "longest_first",
                        stride: int = 0) -> None:
        # truncation is state on the Rust tokenizer; change it only when the request changes
        wanted = (max_length, strategy, stride) if truncation else None
        if wanted == self._truncation:
            return
        if wanted is None:
            self.backend.no_truncation()
        else:
            if max_length < self.backend.num_special_tokens_to_add(True):
                raise InputError(
                    f"max_length={max_length} leaves no room for the special tokens; use at least "
                    f"{self.backend.num_special_tokens_to_add(True) + 1}"
                )
            self.backend.enable_truncation(max_length, strategy=strategy, stride=stride)
        self._truncation = wanted

    def encodings(
        self,
        texts: Sequence[TextInput],
        *,
        max_length: int | None = None,
        truncation: bool = True,
        strategy: str = "longest_first",
        stride: int = 0,
    ) -> list[tokenizers.Encoding]:
        """The tokenizers ``Encoding`` of each text (ids, offsets, word ids, overflowing windows).

        Args:
            strategy: ``"longest_first"``, ``"only_first"`` or ``"only_second"`` (pairs).
            stride: tokens shared by consecutive overflowing windows (``encoding.overflowing``).
        """
        batch = _batch_items(texts)
        self._set_truncation(max_length if max_length is not None else self.max_length, truncation, strategy, stride)
        return self.backend.encode_batch(batch)

    def encode_ids(
        self, texts: Sequence[TextInput], *, max_length: int | None = None, truncation: bool = True
    ) -> TokenIds:
        """Encode without padding: per-text id lists and lengths (the runner's fast path).

        Args:
            texts: N strings, or N ``(text, text_pair)`` tuples.
            max_length: cap on tokens per text, specials included (default: the resolved one).
            truncation: cut texts longer than ``max_length``; when False nothing is cut.

        Raises:
            InputError: ``texts`` is a bare string or holds something else than strings/pairs.
        """
        encodings = self._encode(texts, max_length, truncation, offsets=False)
        ids = [e.ids for e in encodings]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        truncated = np.fromiter((bool(e.overflowing) for e in encodings), dtype=bool, count=len(ids))
        has_pairs = self.token_types and any(not isinstance(t, str) for t in texts)
        type_ids = [e.type_ids for e in encodings] if has_pairs else None
        return TokenIds(ids=ids, lengths=lengths, truncated=truncated, type_ids=type_ids)

    def encode_batch(
        self,
        texts: Sequence[TextInput],
        *,
        max_length: int | None = None,
        truncation: bool = True,
        return_offsets: bool = False,
        pad_to_multiple_of: int | None = None,
    ) -> BatchEncoding:
        """Encode and pad to the longest text in the batch.

        Args:
            texts: B strings, or B ``(text, text_pair)`` tuples (token type 1 on the second).
            max_length: cap on tokens per text, specials included (default: the resolved one).
            truncation: cut texts longer than ``max_length`` (pairs: longest first, as HF does).
            return_offsets: also return character offsets ``[B, T, 2]``.
            pad_to_multiple_of: round T up to a multiple of this.

        Raises:
            InputError: bad ``texts`` or a ``max_length`` too small for the special tokens.
        """
        encodings = self._encode(texts, max_length, truncation, offsets=return_offsets)
        ids = [e.ids for e in encodings]
        type_ids = [e.type_ids for e in encodings] if self.token_types else None
        input_ids, attention_mask, token_type_ids = self.pad(ids, type_ids, pad_to_multiple_of=pad_to_multiple_of)
        lengths = attention_mask.sum(dim=1)
        truncated = torch.tensor([bool(e.overflowing) for e in encodings], dtype=torch.bool)
        offsets = None
        if return_offsets:
            offsets = torch.zeros((*input_ids.shape, 2), dtype=torch.int64)
            flat = list(chain.from_iterable(e.offsets for e in encodings))
            if flat:
                offsets[attention_mask.bool()] = torch.tensor(flat, dtype=torch.int64)
        return BatchEncoding(input_ids, attention_mask, token_type_ids, lengths, truncated, offsets,
                             has_token_types=self.token_types)

    def pad(
        self,
        ids: Sequence[Sequence[int]],
        type_ids: Sequence[Sequence[int]] | None = None,
        *,
        pad_to_multiple_of: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pad id lists on the right to the longest one.

        Returns:
            ``(input_ids, attention_mask, token_type_ids)``, each [B, T] int64.
        """
        lengths = torch.tensor([len(x) for x in ids], dtype=torch.int64)
        width = int(lengths.max()) if len(ids) else 0
        if pad_to_multiple_of:
            width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
        # one mask-indexed write from a flat list instead of a Python loop over rows
        mask = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.int64)
        input_ids[mask] = torch.tensor(list(chain.from_iterable(ids)), dtype=torch.int64)
        token_type_ids = torch.zeros((len(ids), width), dtype=torch.int64)
        if type_ids is not None:
            token_type_ids[mask] = torch.tensor(list(chain.from_iterable(type_ids)), dtype=torch.int64)
        return input_ids, mask.long(), token_type_ids

    @staticmethod
    def pack(ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Concatenate id lists for variable-length execution.

        Returns:
            ``(flat_ids [total_tokens] int64, cu_seqlens [B + 1] int32)``.
        """
        flat = torch.tensor(list(chain.from_iterable(ids)), dtype=torch.int64)
        cu_seqlens = torch.zeros(len(ids) + 1, dtype=torch.int32)
        cu_seqlens[1:] = torch.cumsum(torch.tensor([len(x) for x in ids], dtype=torch.int32), 0)
        return flat, cu_seqlens

    def count_tokens(self, texts: Sequence[TextInput], *, max_length: int | None = None, truncation: bool = True) -> np.ndarray:
        """Tokens per text (special tokens included), after truncation unless ``truncation=False``."""
        return self.encode_ids(texts, max_length=max_length, truncation=truncation).lengths

    def special_layout(self) -> tuple[int, int]:
        """Special tokens the post-processor puts before and after one text (BERT: ``(1, 1)``)."""
        if self._layout is None:
            mask = self.backend.encode("a").special_tokens_mask  # "a" is one plain token in every BERT vocab
            plain = [i for i, m in enumerate(mask) if not m]
            if not plain:
                raise InputError(f"cannot find the special-token layout of {self.source}: 'a' encodes to specials only")
            self._layout = (plain[0], len(mask) - plain[-1] - 1)
        return self._layout

    def encode_fitted(self, texts: Sequence[str], *, max_length: int | None = None, windows: bool = False) -> FittedIds:
        """Encode whole texts, then fit each to ``max_length``: cut it, or split it into windows.

        A cut keeps the first ``max_length - specials`` content tokens with the specials around
        them, exactly what the tokenizer's own truncation gives. Windows split the content into
        consecutive, non-overlapping runs of ``max_length - specials`` tokens (the last one
        shorter), each wrapped in the specials again (``[CLS] ... [SEP]``).

        Args:
            texts: N strings (no pairs).
            max_length: tokens per sequence, specials included (default: the resolved one).
            windows: split long texts instead of cutting them.

        Returns:
            :class:`FittedIds` with M sequences (M = N when cutting) and per-text token counts.

        Raises:
            InputError: an item is not a string, or ``max_length`` leaves no room for content.
        """
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(f"texts[{i}] is {type(t).__name__} {t!r:.60}; each item must be a string")
        limit = self.max_length if max_length is None else int(max_length)
        before, after = self.special_layout()
        room = limit - before - after
        if room < 1:
            raise InputError(f"max_length={limit} leaves no room for text next to {before + after} special tokens; "
                             f"use at least {before + after + 1}")
        full = self.encode_ids(texts, truncation=False)
        tokens = full.lengths
        long = np.flatnonzero(tokens > limit)
        if not windows:
            ids = full.ids
            for i in long.tolist():
                seq = ids[i]
                ids[i] = seq[:limit - after] + seq[len(seq) - after:]
            lengths = np.minimum(tokens, limit)
            return FittedIds(TokenIds(ids, lengths, tokens > limit), tokens, tokens > limit)
        seqs: list[list[int]] = []
        owner: list[int] = []
        start = 0
        for i in long.tolist():  # short texts keep their one sequence; long ones become several
            seqs.extend(full.ids[start:i])
            owner.extend(range(start, i))
            seq = full.ids[i]
            head, content, tail = seq[:before], seq[before:len(seq) - after], seq[len(seq) - after:]
            for w in range(0, len(content), room):
                seqs.append(head + content[w:w + room] + tail)
                owner.append(i)
            start = i + 1
        seqs.extend(full.ids[start:])
        owner.extend(range(start, len(texts)))
        lengths = np.fromiter((len(x) for x in seqs), dtype=np.int64, count=len(seqs))
        no_cut = np.zeros(len(seqs), dtype=bool)
        return FittedIds(TokenIds(seqs, lengths, no_cut), tokens, np.zeros(len(texts), dtype=bool),
                         owner=np.asarray(owner, dtype=np.int64) if len(long) else None)

    # -- inspection ---------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one text, special tokens included (not truncated)."""
        self._set_truncation(self.max_length, False)
        return list(self.backend.encode(text).tokens)

    def decode(self, ids: Sequence[int] | torch.Tensor, *, skip_special_tokens: bool = True) -> str:
        """Ids back to text (pieces joined by the pipeline's decoder, specials dropped by default)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return str(self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def decode_batch(
        self, batch: Sequence[Sequence[int]] | torch.Tensor, *, skip_special_tokens: bool = True
    ) -> list[str]:
        if isinstance(batch, torch.Tensor):
            batch = batch.tolist()
        return list(self.backend.decode_batch([list(x) for x in batch], skip_special_tokens=skip_special_tokens))

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self.backend.id_to_token(token_id)




def _batch_items(texts: Sequence[TextInput]) -> list[TextInput]:
    """``texts`` checked: strings or ``(text, text_pair)`` pairs of strings."""
    if isinstance(texts, str):
        raise InputError(
            "texts must be a list of strings or (text, text_pair) tuples, not one string; wrap it: [text]"
        )
    batch: list[TextInput] = []
    for i, t in enumerate(texts):
        if isinstance(t, str):
            batch.append(t)
        elif isinstance(t, (tuple, list)) and len(t) == 2 and all(isinstance(s, str) for s in t):
            batch.append((t[0], t[1]))
        else:
            raise InputError(
                f"texts[{i}] is {type(t).__name__} {t!r:.60}; each item must be a string or a "
                "(text, text_pair) tuple of two strings"
            )
    return batch
