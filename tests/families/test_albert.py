"""ALBERT family parity: every head against transformers 5 (AlbertFor*), with padding.

The tiny config shares layers the general way (L=3 calls over G=2 groups of 2 inner layers:
call order (0,0),(0,1),(0,0),(0,1),(1,0),(1,1)) with E=16 ≠ H=32; the trunk is also checked on
the published layout (G=1, one layer applied L times). Outputs (hidden states: one per layer
call), losses and gradients (summed over the calls of a shared layer) must agree within 1e-5 for
attention ``auto``, ``eager`` and ``sdpa``; a bertzoo save loads back into transformers with
``albert_layer_groups`` keys and nothing missing. The main job runs on folders with a
SentencePiece-Unigram tokenizer (transformers' AlbertTokenizer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import bertzoo

transformers = pytest.importorskip("transformers", reason="the oracle (dev extra)")

from parity import CORPUS, batch, compare_outputs, summary_table  # noqa: E402
from test_distilbert import (  # noqa: E402 (family-independent checks live there)
    check_answer,
    check_classify_and_rerank,
    check_embed,
    check_fill_mask,
    check_parity,
    check_save_roundtrip,
    check_token_classify,
    check_tokenizer,
    task_folders,
)

FAMILY, PREFIX = "albert", "albert"
VOCAB = 99
LAYOUTS = {"shared": dict(num_hidden_layers=3, num_hidden_groups=2, inner_group_num=2),
           "published": dict(num_hidden_layers=2, num_hidden_groups=1, inner_group_num=1)}
HEADS: dict[str | None, str] = {
    None: "AlbertModel",
    "masked-lm": "AlbertForMaskedLM",
    "pretraining": "AlbertForPreTraining",
    "sequence-classification": "AlbertForSequenceClassification",
    "multiple-choice": "AlbertForMultipleChoice",
    "token-classification": "AlbertForTokenClassification",
    "question-answering": "AlbertForQuestionAnswering",
}


def config(layout: str = "shared", **overrides: Any) -> Any:
    """Tiny AlbertConfig, E=16 < H=32; dropouts on (the models run in eval mode)."""
    fields: dict[str, Any] = dict(vocab_size=VOCAB, embedding_size=16, hidden_size=32, num_attention_heads=4,
                                  intermediate_size=37, max_position_embeddings=64, hidden_dropout_prob=0.1,
                                  attention_probs_dropout_prob=0.1, classifier_dropout_prob=0.2, **LAYOUTS[layout])
    fields.update(overrides)
    return transformers.AlbertConfig(**fields)


def renames(layout: str) -> list[tuple[str, str]]:
    """transformers' trunk keys → bertzoo's: grouped layers flattened, the E → H mapping in the embedding."""
    groups, inner = LAYOUTS[layout]["num_hidden_groups"], LAYOUTS[layout]["inner_group_num"]
    pairs = [(f"encoder.albert_layer_groups.{g}.albert_layers.{k}.", f"encoder.layer.{g * inner + k}.")
             for g in range(groups) for k in range(inner)]
    return [*pairs, ("encoder.embedding_hidden_mapping_in.", "embeddings.embedding_hidden_mapping_in.")]


@pytest.fixture(scope="module", autouse=True)
def parity_table() -> Any:
    """One torch thread (tiny tensors: a second thread only waits at barriers on a busy machine);
    prints the worst diff per head after the module's tests (``pytest -s`` shows it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    import parity

    print("\n" + summary_table({k: v for k, v in parity.DIFFS.items() if k[0] == FAMILY}))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str | None, Path]:
    """One transformers-saved folder per head class (shared layout; weights perturbed off their init)."""
    from parity import make_folder, perturb

    root = tmp_path_factory.mktemp("albert")
    out = {}
    for i, (head, arch) in enumerate(HEADS.items()):
        torch.manual_seed(i)
        model = getattr(transformers, arch)(config(num_labels=3 if head == "token-classification" else 2))
        perturb(model, seed=i)
        out[head] = make_folder(model, root / arch)
    return out


@pytest.mark.parametrize("attention", ["auto", "eager", "sdpa"])
@pytest.mark.parametrize("head", list(HEADS), ids=[h or "trunk" for h in HEADS])
def test_every_head_equals_transformers(folders: dict[str | None, Path], head: str | None, attention: str) -> None:
    ours = check_parity(FAMILY, PREFIX, renames("shared"), head, HEADS[head], folders[head], attention,
                        token_types=True, vocab=VOCAB)
    trunk = ours.bert if head is not None else ours
    assert len(trunk.encoder.layer) == 4  # G · inner distinct modules for 3 · 2 calls


def test_published_layout_one_layer_applied_l_times(tmp_path: Path) -> None:
    from parity import make_folder, perturb

    model = transformers.AlbertForMaskedLM(config("published"))
    perturb(model)
    folder = make_folder(model, tmp_path / "published")
    for attention in ("auto", "eager"):
        ours = check_parity(FAMILY, PREFIX, renames("published"), "masked-lm", "AlbertForMaskedLM", folder, attention,
                            token_types=True, vocab=VOCAB)
        assert len(ours.bert.encoder.layer) == 1


def test_packed_execution_equals_transformers(folders: dict[str | None, Path]) -> None:
    hf = transformers.AlbertModel.from_pretrained(folders[None]).eval()
    ours = bertzoo.from_pretrained(folders[None]).eval()
    inputs = batch(VOCAB, (4, 11), lengths=[11, 3, 7, 1], token_types=True)
    mask = inputs["attention_mask"]
    with torch.no_grad():
        expected = hf(**inputs)
        got = ours(**inputs)
        assert ours.last_call_packed  # a 2-D mask runs packed by default
        compare_outputs(expected, got, mask, label=(FAMILY, "trunk"))
        real = mask.bool()
        cu = torch.nn.functional.pad(mask.sum(1).cumsum(0), (1, 0)).int()
        packed = ours.forward_packed(inputs["input_ids"][real], cu, token_type_ids=inputs["token_type_ids"][real])
        embeds = torch.randn(2, 5, 16)  # E-wide, as transformers takes them
        compare_outputs(hf(inputs_embeds=embeds), ours(inputs_embeds=embeds), label=(FAMILY, "trunk"))
    diff = float((packed - expected.last_hidden_state[real]).abs().max())
    from parity import record

    assert record(FAMILY, "trunk", "forward_packed", diff) <= 1e-5


@pytest.mark.parametrize("head", list(HEADS), ids=[h or "trunk" for h in HEADS])
def test_save_loads_in_transformers(folders: dict[str | None, Path], tmp_path: Path, head: str | None) -> None:
    check_save_roundtrip(head, HEADS[head], folders[head], tmp_path / "saved", token_types=True, vocab=VOCAB)


def test_config_round_trip(folders: dict[str | None, Path], tmp_path: Path) -> None:
    ours = bertzoo.from_pretrained(folders["sequence-classification"], head="auto")
    spec = ours.spec
    assert (spec.model_type, spec.embedding_size, spec.num_hidden_groups, spec.inner_group_num,
            spec.hidden_act, spec.classifier_dropout) == ("albert", 16, 2, 2, "gelu_new", 0.2)
    assert spec.layer_schedule == (0, 1, 0, 1, 2, 3)  # transformers' call order
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert (saved["model_type"], saved["architectures"], saved["classifier_dropout_prob"], saved["embedding_size"]) == (
        "albert", ["AlbertForSequenceClassification"], 0.2, 16)
    assert "classifier_dropout" not in saved
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "albert.encoder.albert_layer_groups.1.albert_layers.1.ffn.weight" in keys
    assert {"albert.pooler.weight", "albert.encoder.embedding_hidden_mapping_in.weight"} <= keys


def test_what_albert_lacks_is_refused_with_the_fix() -> None:
    from bertzoo.errors import IncompatibleComponentError, SpecError

    tiny = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37, vocab_size=VOCAB)
    with pytest.raises(IncompatibleComponentError, match="albert layer has no cross-attention.*layer='bert'"):
        bertzoo.build("albert-base-v2", is_decoder=True, add_cross_attention=True, **tiny)
    with pytest.raises(SpecError, match="the albert family has no 'causal-lm' head.*pretraining"):
        bertzoo.build("albert-base-v2", head="causal-lm", **tiny)


# -- the main job ----------------------------------------------------------------------------------
def albert_tokenizer(vocab_size: int = 150) -> Any:
    """A transformers ``AlbertTokenizer`` (SentencePiece Unigram) trained on the parity corpus;
    ``<pad>``=0, ``<unk>``=1, ``[CLS]``=2, ``[SEP]``=3, ``[MASK]``=4 (albert-v2's layout)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.StripAccents(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"],
                                      unk_token="<unk>", show_progress=False)
    tok.train_from_iterator(CORPUS * 10, trainer)
    vocab = [tuple(v) for v in json.loads(tok.to_str())["model"]["vocab"]]
    return transformers.AlbertTokenizer(vocab=vocab)


@pytest.mark.slow
def test_the_main_job_on_albert_folders(tmp_path: Path) -> None:
    tokenizer = albert_tokenizer()
    folders = task_folders(tmp_path, lambda **kw: config("published", **kw), tokenizer, "Albert")
    check_tokenizer(folders["trunk"], token_types=False)  # AlbertTokenizer returns none, even for pairs
    check_embed(folders["trunk"], tmp_path)
    check_classify_and_rerank(folders["classify"], folders["rerank"], "AlbertForSequenceClassification")
    check_fill_mask(folders["fill-mask"])
    check_token_classify(folders["token-classify"])
    check_answer(folders["answer"], "AlbertForQuestionAnswering")
