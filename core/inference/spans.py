"""Per-token task outputs back to per-text rows, for token-level tasks (token-classify, answer)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bertzoo.inference.engine import Engine

if TYPE_CHECKING:
    import tokenizers

    from bertzoo.inference.tokenizer import TokenIds


def token_ids_of(encodings: Sequence[tokenizers.Encoding], *, pairs: bool) -> TokenIds:
    """Rust encodings as the :class:`~bertzoo.inference.tokenizer.TokenIds` the engine batches."""
    from bertzoo.inference.tokenizer import TokenIds

    ids = [list(e.ids) for e in encodings]
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    truncated = np.fromiter((bool(e.overflowing) for e in encodings), dtype=bool, count=len(ids))
    return TokenIds(ids, lengths, truncated, [list(e.type_ids) for e in encodings] if pairs else None)


def per_text_rows(engine: Engine, enc: TokenIds, method: str, *, batch_tokens: int | None, progress: bool | None,
                  threads: int | None) -> Iterator[tuple[int, Any]]:
    """``(text index, per-token output)`` for every text: the contract ``method``'s result cut back
    to each text's real tokens (a tensor with ``len(ids)`` rows, or a tuple of such tensors)."""
    fn = engine.contract(method)
    with engine.running(threads):
        for batch in engine.batches(enc, batch_tokens, progress):
            states = engine.states(batch)
            result = fn(states)
            parts = result if isinstance(result, tuple) else (result,)
            lengths = [len(enc.ids[i]) for i in batch.index.tolist()]
            shape = (int(sum(lengths)),) if states.packed else (len(lengths), int(states.input_ids.shape[1]))
            for part in parts:
                engine.expect_shape(part, (*shape, *(None,) * (part.dim() - len(shape))), f"{method} output")
            for row, (i, n) in enumerate(zip(batch.index.tolist(), lengths, strict=True)):
                if states.packed:
                    assert states.cu_seqlens is not None
                    start = int(states.cu_seqlens[row])
                    cut = tuple(p[start:start + n].float().cpu() for p in parts)
                else:
                    cut = tuple(p[row, :n].float().cpu() for p in parts)
                yield i, cut if isinstance(result, tuple) else cut[0]


__all__ = ["per_text_rows", "token_ids_of"]
