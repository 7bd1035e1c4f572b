"""ModernBERT against transformers 5: every head vs transformers' eager (and the trunk vs its sdpa),
global and local layers, pre-LN with final_norm, RoPE, packed execution, save round trip, config
options (window, global layers, rotary bases, pooling) through config.json, and fill-mask like the
transformers pipeline.

Tiny random configs (hidden 32, 4 layers: global at 0 and 3, local_attention 4 → keys within ±2),
sequences of 9 and 24 tokens (longer than the window), perturbed weights, pad id 0, right padding.
Also: padded queries whose window holds only padding (equal to transformers' sdpa), inputs longer
than max_position_embeddings (rotary: transformers runs them), and bf16 against transformers' bf16.
Shared checks: tests/families/parity.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import bertzoo

transformers = pytest.importorskip("transformers", reason="the oracle (dev extra)")
from parity import (  # noqa: E402
    ATOL,
    CORPUS,
    TINY,
    B,
    C,
    FamilyCase,
    S,
    batch,
    check_head,
    check_roundtrip,
    hf_folder,
    max_diff,
    record,
)

HEADS = ("trunk", "masked-lm", "sequence-classification", "multiple-choice", "token-classification",
         "question-answering")
SPECIALS = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"]
CONFIG = {"num_hidden_layers": 4, "local_attention": 4, "global_attn_every_n_layers": 3, "pad_token_id": 0,
          "cls_token_id": 1, "sep_token_id": 2, "bos_token_id": 1, "eos_token_id": 2, "norm_eps": 1e-5,
          "global_rope_theta": 1000.0, "local_rope_theta": 100.0}


def modernbert_tokenizer() -> Any:
    """A byte-level BPE ``tokenizer.json`` like ModernBERT's: ``[CLS] A [SEP]`` / ``[CLS] A [SEP] B [SEP]``."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS * 10, trainers.BpeTrainer(
        vocab_size=300, special_tokens=SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    tok.add_special_tokens([AddedToken("[MASK]", lstrip=True)])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
        unk_token="[UNK]", model_input_names=["input_ids", "attention_mask"])


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return modernbert_tokenizer()


class ModernBertCase(FamilyCase):
    """Rows padded by at most 2 tokens: every padded query still sees a real key within its local
    window (±2), since the heads compare every position with transformers' eager path. A padded query
    that sees none gives zeros, as transformers' sdpa does, where its eager path averages every value
    row (test_queries_whose_window_is_all_padding_equal_transformers_sdpa)."""

    def inputs(self, head: str, *, left: bool = False, seed: int = 1) -> dict[str, torch.Tensor]:
        shape = (B, C, S) if head == "multiple-choice" else (B, S)
        return batch(self.vocab_size, shape, pad_id=self.pad_id, seed=seed, left=left, lengths=[S, S - 2, S - 1])


@pytest.fixture(scope="module")
def case(tokenizer: Any) -> FamilyCase:
    config = {**TINY, **CONFIG, "vocab_size": len(tokenizer)}
    config.pop("hidden_dropout_prob"), config.pop("attention_probs_dropout_prob")
    return ModernBertCase(family="modernbert", hf_prefix="ModernBert", base_prefix="model", token_types=False,
                      heads=HEADS, renames=(("layers.", "encoder.layer."), ("final_norm.", "final_norm.")),
                      config=config)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, case: FamilyCase, tokenizer: Any) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("modernbert-family")
    made = {head: hf_folder(case, head, root / head, tokenizer) for head in HEADS}
    made["mean"] = hf_folder(case, "sequence-classification", root / "mean", tokenizer, classifier_pooling="mean")
    made["mc-mean"] = hf_folder(case, "multiple-choice", root / "mc-mean", tokenizer, classifier_pooling="mean")
    return made


def test_config_options_reach_the_layers(folders: dict[str, Path]) -> None:
    ours = bertzoo.from_pretrained(folders["trunk"])
    layers = list(ours.encoder.layer)
    assert [layer.attention_type for layer in layers] == ["full_attention", "sliding_attention",
                                                          "sliding_attention", "full_attention"]
    assert [layer.attn.window for layer in layers] == [None, 2, 2, None]
    assert [layer.attn.theta for layer in layers] == [1000.0, 100.0, 100.0, 1000.0]
    assert isinstance(layers[0].attn_norm, torch.nn.Identity) and ours.final_norm is not None
    assert not any(k.startswith("pooler") for k in ours.state_dict())


# every head with the default attention; the explicit kernels on the trunk and one per-token head (the
# heads' own math does not depend on the attention)
ATTENTION_CASES = [(head, "auto") for head in HEADS] + [
    (head, attention) for head in ("trunk", "masked-lm") for attention in ("eager", "sdpa")]


@pytest.mark.parametrize(("head", "attention"), ATTENTION_CASES)
def test_head_matches_transformers(case: FamilyCase, folders: dict[str, Path], head: str, attention: str) -> None:
    check_head(case, folders[head], head, attention)


@pytest.mark.parametrize("head", ["sequence-classification", "multiple-choice"])
def test_mean_pooling_heads(case: FamilyCase, folders: dict[str, Path], head: str) -> None:
    folder = folders["mean" if head == "sequence-classification" else "mc-mean"]
    assert json.loads((folder / "config.json").read_text())["classifier_pooling"] == "mean"
    check_head(case, folder, head, "auto")


@pytest.mark.parametrize("hf_attention", ["eager", "sdpa"])
@pytest.mark.parametrize("attention", ["eager", "sdpa", "auto"])
def test_long_inputs_local_and_global_layers(case: FamilyCase, folders: dict[str, Path], hf_attention: str,
                                             attention: str) -> None:
    """24 tokens (6x the window), right padding: every hidden state (the last is post-final-norm)."""
    hf = transformers.ModernBertModel.from_pretrained(folders["trunk"], attn_implementation=hf_attention).eval()
    ours = bertzoo.from_pretrained(folders["trunk"], attention=attention).eval()
    x = batch(case.vocab_size, (3, 24), pad_id=0, lengths=[24, 13, 6])
    real = x["attention_mask"].bool()
    with torch.no_grad():
        want = hf(**x, output_hidden_states=True)
        got = ours(**x, output_hidden_states=True)
        diff = max_diff(got.hidden_states, want.hidden_states, x["attention_mask"])
        assert record("modernbert", "trunk", f"24 tokens ({attention} vs {hf_attention})", diff) <= ATOL
        if attention == "auto":
            assert ours.last_call_packed
            cu = torch.nn.functional.pad(real.sum(1).cumsum(0), (1, 0)).int()
            packed = ours.forward_packed(x["input_ids"][real], cu)
            assert record("modernbert", "trunk", "forward_packed", max_diff(packed, want.last_hidden_state[real])) <= ATOL


def test_attentions_equal_transformers_eager(folders: dict[str, Path], case: FamilyCase) -> None:
    hf = transformers.ModernBertModel.from_pretrained(folders["trunk"], attn_implementation="eager").eval()
    ours = bertzoo.from_pretrained(folders["trunk"], attention="eager").eval()
    x = batch(case.vocab_size, (2, 12), pad_id=0, lengths=[12, 10])  # every padded query sees a real key
    with torch.no_grad():
        diff = max_diff(ours(**x, output_attentions=True).attentions, hf(**x, output_attentions=True).attentions)
    assert record("modernbert", "trunk", "attentions", diff) <= ATOL


@pytest.mark.parametrize("head", ["trunk", "masked-lm", "sequence-classification"])
def test_save_pretrained_loads_in_transformers(case: FamilyCase, folders: dict[str, Path], tmp_path: Path,
                                               head: str) -> None:
    check_roundtrip(case, folders[head], head, tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["local_attention"] == 4 and saved["layer_types"][:2] == ["full_attention", "sliding_attention"]


def test_fill_mask_equals_transformers_pipeline(case: FamilyCase, tokenizer: Any, tmp_path: Path) -> None:
    folder = hf_folder(case, "masked-lm", tmp_path / "mlm", tokenizer, scale=1.0, max_position_embeddings=128)
    texts = ["Paris is the [MASK] of France.", "The quick [MASK] fox jumps over the lazy dog."]
    theirs = transformers.pipeline("fill-mask", model=str(folder), device="cpu", top_k=3)(texts)
    ours = bertzoo.fill_mask(texts, model=folder, top_k=3)
    for a, b in zip(ours, theirs, strict=True):
        assert [r["token"] for r in a] == [r["token"] for r in b]
        np.testing.assert_allclose([r["score"] for r in a], [r["score"] for r in b], atol=1e-5)


def test_queries_whose_window_is_all_padding_equal_transformers_sdpa(case: FamilyCase,
                                                                    folders: dict[str, Path]) -> None:
    """Row 1 has 5 real tokens of 12: padded queries 8..11 see only padding in the local layers (±2).
    Every position equals transformers' sdpa (its default path: zeros there, as DESIGN's rule for rows
    without a key); its eager path differs from its own sdpa at those positions only."""
    x = batch(case.vocab_size, (2, 12), pad_id=0, lengths=[12, 5])
    real = x["attention_mask"].bool()
    with torch.no_grad():
        hf = {a: transformers.ModernBertModel.from_pretrained(folders["trunk"], attn_implementation=a).eval()(**x)
              for a in ("eager", "sdpa")}
        split = max_diff(hf["eager"].last_hidden_state[1, 8:], hf["sdpa"].last_hidden_state[1, 8:])
        assert split > 1e-3  # the input does reach the case: transformers' two paths disagree there
        for attention in ("eager", "sdpa"):
            got = bertzoo.from_pretrained(folders["trunk"], attention=attention).eval()(**x).last_hidden_state
            every = record("modernbert", "trunk", f"all-padding window ({attention} vs sdpa, every position)",
                           max_diff(got, hf["sdpa"].last_hidden_state))
            assert every <= ATOL
            assert max_diff(got, hf["eager"].last_hidden_state, x["attention_mask"]) <= ATOL
        tagger = bertzoo.from_pretrained(folders["token-classification"], head="auto").eval()
        want = transformers.ModernBertForTokenClassification.from_pretrained(
            folders["token-classification"], attn_implementation="sdpa").eval()(**x).logits
        assert record("modernbert", "token-classification", "all-padding window (every position)",
                      max_diff(tagger(**x).logits, want)) <= ATOL
        packed = bertzoo.from_pretrained(folders["trunk"]).eval()(**x).last_hidden_state
        assert max_diff(packed, hf["sdpa"].last_hidden_state, real) <= ATOL


def test_inputs_longer_than_max_position_embeddings_equal_transformers(tmp_path: Path, tokenizer: Any) -> None:
    """Rotary positions have no table: transformers runs 40 tokens on max_position_embeddings=16 and so
    does bertzoo (the embedding declares max_positions=None), padded, packed and through forward_packed."""
    config = {**TINY, **CONFIG, "vocab_size": len(tokenizer), "max_position_embeddings": 16}
    config.pop("hidden_dropout_prob"), config.pop("attention_probs_dropout_prob")
    case = ModernBertCase(family="modernbert", hf_prefix="ModernBert", base_prefix="model", token_types=False,
                          heads=HEADS, renames=(("layers.", "encoder.layer."), ("final_norm.", "final_norm.")),
                          config=config)
    folder = hf_folder(case, "trunk", tmp_path / "short", tokenizer)
    x = batch(case.vocab_size, (2, 40), pad_id=0, lengths=[40, 30])
    real = x["attention_mask"].bool()
    with torch.no_grad():
        want = transformers.ModernBertModel.from_pretrained(folder, attn_implementation="sdpa").eval()(**x)
        for attention in ("eager", "sdpa", None):
            ours = bertzoo.from_pretrained(folder, attention=attention).eval()
            got = ours(**x).last_hidden_state
            assert record("modernbert", "trunk", f"40 tokens > max_position_embeddings ({attention})",
                          max_diff(got, want.last_hidden_state, real)) <= ATOL
        packed = ours.forward_packed(x["input_ids"][real], torch.tensor([0, 40, 70]))
        assert max_diff(packed, want.last_hidden_state[real]) <= ATOL


BF16_ULP = 2.0**-7  # bf16 keeps 8 significant bits: one ulp is 2^-7 of the leading power of two


def test_bf16_equals_transformers_bf16(case: FamilyCase, folders: dict[str, Path]) -> None:
    """bf16 eager probabilities and hidden states against transformers' bf16 eager (which softmaxes in
    fp32, then rounds), sdpa and packed against its sdpa.

    Tolerances: probabilities within one bf16 ulp of a value below 1 (2^-8: fp32 accumulation, one
    rounding; a softmax in bf16 arithmetic misses by ~2x that); hidden states within one ulp of the
    largest state, the spread between transformers' own eager and sdpa paths in bf16. Measured: 0.
    """
    x = batch(case.vocab_size, (3, 24), pad_id=0, lengths=[24, 13, 6])
    real = x["attention_mask"].bool()
    with torch.no_grad():
        hf = {a: transformers.ModernBertModel.from_pretrained(folders["trunk"], attn_implementation=a,
                                                             dtype=torch.bfloat16).eval()
              for a in ("eager", "sdpa")}
        want = {a: m(**x, output_attentions=a == "eager") for a, m in hf.items()}
        ulp = BF16_ULP * 2.0 ** float(torch.floor(torch.log2(want["eager"].last_hidden_state.float().abs().max())))
        for attention, oracle in (("eager", "eager"), ("sdpa", "sdpa"), (None, "sdpa")):
            ours = bertzoo.from_pretrained(folders["trunk"], attention=attention, dtype=torch.bfloat16).eval()
            got = ours(**x, output_attentions=attention == "eager")
            assert got.last_hidden_state.dtype == torch.bfloat16
            diff = max_diff(got.last_hidden_state.float(), want[oracle].last_hidden_state.float(), real)
            assert record("modernbert", "trunk", f"bf16 ({attention} vs {oracle})", diff) <= ulp
            if attention == "eager":
                rows = real[:, None, :, None]  # real queries (padded ones see no key in local layers)
                probs = max(((a.float() - b.float()) * rows).abs().max().item()
                            for a, b in zip(got.attentions, want["eager"].attentions, strict=True))
                assert record("modernbert", "trunk", "bf16 eager probabilities", probs) <= 2.0**-8
