"""MPNet against transformers 5: every head (eager, sdpa, flash/packed), the relative position bias
(once per forward, padding-unaware, packed blocks), save round trip, the tokenizer and the main job
(a sentence-transformers folder embeds like sentence-transformers).

Tiny random configs (hidden 32, 2 layers, 4 heads, intermediate 37, 64 positions), perturbed weights,
dropout off, right-padded inputs with pad id 1 (MPNet's hard-coded padding index). Sequences of 40
tokens reach the log-spaced buckets (distances ≥ 8). Shared checks: tests/families/parity.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import bertzoo

transformers = pytest.importorskip("transformers", reason="the oracle (dev extra)")
from parity import (  # noqa: E402
    ATOL,
    CORPUS,
    TINY,
    FamilyCase,
    batch,
    check_head,
    check_roundtrip,
    hf_folder,
    max_diff,
    record,
    st_folder,
)

from bertzoo.inference.tokenizer import Tokenizer  # noqa: E402

HEADS = ("trunk", "masked-lm", "sequence-classification", "multiple-choice", "token-classification",
         "question-answering")
SPECIALS = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]  # MPNet's ids: <s> 0, <pad> 1, </s> 2


def mpnet_tokenizer() -> Any:
    """A transformers ``MPNetTokenizer`` (WordPiece, RoBERTa-style specials) trained on the corpus."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, normalizers, pre_tokenizers, trainers

    tok = HFTokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(CORPUS * 10, trainers.WordPieceTrainer(vocab_size=200, special_tokens=SPECIALS,
                                                                  show_progress=False))
    return transformers.MPNetTokenizer(vocab=tok.get_vocab())


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return mpnet_tokenizer()


@pytest.fixture(scope="module")
def case(tokenizer: Any) -> FamilyCase:
    return FamilyCase(
        family="mpnet", hf_prefix="MPNet", base_prefix="mpnet", token_types=False, heads=HEADS,
        renames=(("encoder.relative_attention_bias.", "embeddings.relative_attention_bias."),),
        config={**TINY, "vocab_size": len(tokenizer), "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
                "layer_norm_eps": 1e-5},
    )


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, case: FamilyCase, tokenizer: Any) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mpnet-family")
    return {head: hf_folder(case, head, root / head, tokenizer) for head in HEADS}


# every head with the default attention; the explicit kernels on the trunk and one per-token head (the
# heads' own math does not depend on the attention)
ATTENTION_CASES = [(head, "auto") for head in HEADS] + [
    (head, attention) for head in ("trunk", "masked-lm") for attention in ("eager", "sdpa")]


@pytest.mark.parametrize(("head", "attention"), ATTENTION_CASES)
def test_head_matches_transformers(case: FamilyCase, folders: dict[str, Path], head: str, attention: str) -> None:
    check_head(case, folders[head], head, attention)


@pytest.mark.parametrize("head", ["trunk", "masked-lm", "sequence-classification"])
def test_save_pretrained_loads_in_transformers(case: FamilyCase, folders: dict[str, Path], tmp_path: Path,
                                               head: str) -> None:
    check_roundtrip(case, folders[head], head, tmp_path / "saved")


@pytest.mark.parametrize("attention", ["eager", "sdpa", "auto"])
def test_relative_bias_on_long_padded_and_packed_inputs(case: FamilyCase, folders: dict[str, Path],
                                                       attention: str) -> None:
    """40 tokens (log-spaced buckets), right and left padding, packed forward and forward_packed."""
    hf = transformers.MPNetModel.from_pretrained(folders["trunk"]).eval()
    ours = bertzoo.from_pretrained(folders["trunk"], attention=attention).eval()
    x = batch(case.vocab_size, (3, 40), pad_id=1, lengths=[40, 23, 9])
    real = x["attention_mask"].bool()
    with torch.no_grad():
        want = hf(**x, output_hidden_states=True)
        got = ours(**x, output_hidden_states=True)
        assert record("mpnet", "trunk", f"40 tokens ({attention})",
                      max_diff(got.hidden_states, want.hidden_states, x["attention_mask"])) <= ATOL
        left = batch(case.vocab_size, (3, 40), pad_id=1, lengths=[40, 23, 9], left=True)
        got_left = ours(**left).last_hidden_state
        want_left = hf(**left).last_hidden_state
        assert max_diff(got_left, want_left, left["attention_mask"]) <= ATOL
        if attention == "auto":
            assert ours.last_call_packed
            cu = torch.nn.functional.pad(real.sum(1).cumsum(0), (1, 0)).int()
            packed = ours.forward_packed(x["input_ids"][real], cu)
            assert record("mpnet", "trunk", "forward_packed", max_diff(packed, want.last_hidden_state[real])) <= ATOL


def test_weights_and_the_bias_made_once(folders: dict[str, Path]) -> None:
    """output_attentions equals transformers'; the bias table runs once per forward, not per layer."""
    hf = transformers.MPNetModel.from_pretrained(folders["trunk"]).eval()
    ours = bertzoo.from_pretrained(folders["trunk"], attention="eager").eval()
    x = batch(hf.config.vocab_size, (2, 12), pad_id=1, lengths=[12, 7])
    calls = []
    hook = ours.embeddings.relative_attention_bias.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        got, want = ours(**x, output_attentions=True), hf(**x, output_attentions=True)
    hook.remove()
    assert len(calls) == 1
    assert record("mpnet", "trunk", "attentions", max_diff(got.attentions, want.attentions)) <= ATOL


def test_tokenizer_equals_transformers(folders: dict[str, Path]) -> None:
    hf = transformers.AutoTokenizer.from_pretrained(folders["trunk"])
    ours = Tokenizer.from_folder(folders["trunk"])
    texts = ["Hello world", "Paris is the capital of <mask>.", "A naïve café in 東京"]
    pairs = [("What is the answer?", "The answer is forty-two."), ("Who?", "Paris.")]
    for items in (texts, pairs):
        firsts = [t if isinstance(t, str) else t[0] for t in items]
        seconds = None if isinstance(items[0], str) else [t[1] for t in items]
        want = hf(firsts, seconds, padding=True, return_tensors="pt")
        got = ours.encode_batch(items)
        assert torch.equal(got.input_ids, want["input_ids"])
        assert torch.equal(got.attention_mask, want["attention_mask"])
    assert ours.pad_id == 1


SENTENCES = ["The quick brown fox jumps over the lazy dog.", "Paris is the capital of France.",
             "Tokenizers split text into pieces!", "ok", "A naïve café résumé in Zürich, 1234 times a day."]


def test_embed_equals_sentence_transformers(folders: dict[str, Path], tmp_path: Path) -> None:
    st = pytest.importorskip("sentence_transformers")
    folder = st_folder(folders["trunk"], tmp_path / "st")
    want = st.SentenceTransformer(str(folder), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    got = torch.from_numpy(bertzoo.embed(SENTENCES, model=folder))
    cos = torch.nn.functional.cosine_similarity(got, want.cpu(), dim=1)
    record("mpnet", "sentence-embedding", "1 - cos vs sentence-transformers", float(1 - cos.min()))
    assert float(cos.min()) >= 0.99999, cos
