"""DistilBERT family parity: every head against transformers 5 (DistilBertFor*), with padding.

Tiny random checkpoints saved by transformers are loaded with ``bertzoo.from_pretrained``
(family from ``model_type``, head from ``architectures``); outputs, losses and gradients must
agree within 1e-5 for attention ``auto`` (packed where the call allows it), ``eager`` and ``sdpa``.
A bertzoo save must load back into transformers with no missing or unexpected key. The main job
(embed / classify / rerank / fill-mask / token-classify / answer) runs on tiny folders with a
WordPiece tokenizer, against sentence-transformers and transformers' pipelines.

The main-job oracles here are family-independent; tests/families/test_albert.py imports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import bertzoo

transformers = pytest.importorskip("transformers", reason="the oracle (dev extra)")

from parity import (  # noqa: E402 (after the importorskip)
    batch,
    compare_outputs,
    grad_diff,
    make_folder,
    output_fields,
    perturb,
    record,
    st_folder,
    summary_table,
    wordpiece_tokenizer,
)

FAMILY, PREFIX, RENAMES = "distilbert", "distilbert", (("transformer.", "encoder."),)
VOCAB = 99
# bertzoo head name (None = the bare trunk) → transformers class
HEADS: dict[str | None, str] = {
    None: "DistilBertModel",
    "masked-lm": "DistilBertForMaskedLM",
    "sequence-classification": "DistilBertForSequenceClassification",
    "multiple-choice": "DistilBertForMultipleChoice",
    "token-classification": "DistilBertForTokenClassification",
    "question-answering": "DistilBertForQuestionAnswering",
}


def config(**overrides: Any) -> Any:
    """Tiny DistilBertConfig (its own field names); dropouts on (the models run in eval mode)."""
    fields: dict[str, Any] = dict(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                                  max_position_embeddings=64, seq_classif_dropout=0.3, qa_dropout=0.15)
    fields.update(overrides)
    return transformers.DistilBertConfig(**fields)


def labels_for(arch: str, inputs: dict[str, torch.Tensor], vocab: int) -> dict[str, torch.Tensor]:
    """Labels for every head class transformers has (padding ignored with -100 where per token)."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    B = ids.shape[0]
    if arch.endswith(("ForMaskedLM", "ForPreTraining")):
        out = {"labels": torch.where(mask.bool() & (torch.arange(ids.shape[-1]) % 3 == 1), ids, -100)}
        if arch.endswith("ForPreTraining"):
            out["sentence_order_label"] = torch.arange(B) % 2
        return out
    if arch.endswith("ForSequenceClassification"):
        return {"labels": torch.arange(B) % 2}
    if arch.endswith("ForMultipleChoice"):
        return {"labels": torch.arange(B) % ids.shape[1]}
    if arch.endswith("ForTokenClassification"):
        return {"labels": torch.where(mask.bool(), ids % 2, -100)}
    if arch.endswith("ForQuestionAnswering"):
        return {"start_positions": torch.arange(B) % 3, "end_positions": torch.arange(B) % 3 + 2}
    return {}


def inputs_for(arch: str, vocab: int, token_types: bool) -> dict[str, torch.Tensor]:
    shape = (3, 2, 9) if arch.endswith("ForMultipleChoice") else (3, 9)
    return batch(vocab, shape, token_types=token_types)


def objective(out: Any, mask: torch.Tensor) -> torch.Tensor:
    """What to backpropagate: the loss, else the real tokens' states (a packed call leaves padding at 0)."""
    if getattr(out, "loss", None) is not None:
        return out.loss  # type: ignore[no-any-return]
    return (out.last_hidden_state * mask[..., None]).sum()


def check_parity(family: str, prefix: str, renames: Any, head: str | None, arch: str, folder: Path, attention: str,
                 *, token_types: bool, vocab: int) -> Any:
    """Load ``folder`` both ways; compare outputs, loss and gradients (with padding); returns our model."""
    hf_impl = "eager" if attention == "eager" else "sdpa"
    hf = getattr(transformers, arch).from_pretrained(folder, attn_implementation=hf_impl).eval()
    ours = bertzoo.from_pretrained(folder, head="auto", attention=attention).eval()
    assert type(ours).__name__ == (arch if head is not None else "BertModel")  # head="auto" read architectures
    inputs = inputs_for(arch, vocab, token_types)
    labels = labels_for(arch, inputs, vocab)
    label = (family, head or "trunk")
    mask = inputs["attention_mask"].reshape(-1, inputs["attention_mask"].shape[-1])
    hf_out, our_out = hf(**inputs, **labels), ours(**inputs, **labels)
    compare_outputs(hf_out, our_out, mask, label=label)
    objective(hf_out, mask).backward()
    objective(our_out, mask).backward()
    assert record(*label, f"gradients ({attention})", grad_diff(hf, ours, prefix, renames)) <= 1e-5
    if attention == "eager":  # every layer's states and probabilities, padded positions included
        hf_all = hf(**inputs, output_hidden_states=True, output_attentions=True)
        our_all = ours(**inputs, output_hidden_states=True, output_attentions=True)
        compare_outputs(hf_all, our_all, label=label, fields=list(output_fields(hf_all)))  # no cross_attentions
    return ours


def check_save_roundtrip(head: str | None, arch: str, folder: Path, out: Path, *, token_types: bool,
                         vocab: int) -> None:
    """bertzoo's save loads into transformers with no missing / unexpected / mismatched key, same outputs."""
    ours = bertzoo.from_pretrained(folder, head="auto").eval()
    ours.save_pretrained(out)
    cls = getattr(transformers, arch)
    reloaded, info = cls.from_pretrained(out, output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    original = cls.from_pretrained(folder).eval()
    inputs = inputs_for(arch, vocab, token_types)
    compare_outputs(original(**inputs), reloaded.eval()(**inputs), tol=0.0)


# -- fixtures ------------------------------------------------------------------------------------------
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
    """One transformers-saved folder per head class (weights perturbed off their init)."""
    root = tmp_path_factory.mktemp("distilbert")
    out = {}
    for i, (head, arch) in enumerate(HEADS.items()):
        torch.manual_seed(i)
        model = getattr(transformers, arch)(config(num_labels=2 if head != "token-classification" else 3))
        perturb(model, seed=i)
        out[head] = make_folder(model, root / arch)
    return out


# -- parity --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("attention", ["auto", "eager", "sdpa"])
@pytest.mark.parametrize("head", list(HEADS), ids=[h or "trunk" for h in HEADS])
def test_every_head_equals_transformers(folders: dict[str | None, Path], head: str | None, attention: str) -> None:
    check_parity(FAMILY, PREFIX, RENAMES, head, HEADS[head], folders[head], attention, token_types=True,
                 vocab=VOCAB)  # token_type_ids are given and ignored, as transformers ignores them


def test_packed_execution_equals_transformers(folders: dict[str | None, Path]) -> None:
    hf = transformers.DistilBertModel.from_pretrained(folders[None]).eval()
    ours = bertzoo.from_pretrained(folders[None]).eval()
    inputs = batch(VOCAB, (4, 11), lengths=[11, 3, 7, 1])
    mask = inputs["attention_mask"]
    with torch.no_grad():
        expected = hf(**inputs).last_hidden_state
        padded_call = ours(**inputs).last_hidden_state
        assert ours.last_call_packed  # a 2-D mask runs packed by default
        compare_outputs({"last_hidden_state": expected}, {"last_hidden_state": padded_call}, mask,
                        label=(FAMILY, "trunk"))
        ids = inputs["input_ids"][mask.bool()]  # (T,)
        cu = torch.nn.functional.pad(mask.sum(1).cumsum(0), (1, 0)).int()
        packed = ours.forward_packed(ids, cu)  # (T, H)
        embeds = torch.randn(2, 5, 32)
        compare_outputs(hf(inputs_embeds=embeds), ours(inputs_embeds=embeds), label=(FAMILY, "trunk"))
    assert record(FAMILY, "trunk", "forward_packed", float((packed - expected[mask.bool()]).abs().max())) <= 1e-5


@pytest.mark.parametrize("head", list(HEADS), ids=[h or "trunk" for h in HEADS])
def test_save_loads_in_transformers(folders: dict[str | None, Path], tmp_path: Path, head: str | None) -> None:
    check_save_roundtrip(head, HEADS[head], folders[head], tmp_path / "saved", token_types=True, vocab=VOCAB)


def test_config_names_and_head_options_round_trip(folders: dict[str | None, Path], tmp_path: Path) -> None:
    import json

    ours = bertzoo.from_pretrained(folders["sequence-classification"], head="auto")
    spec = ours.spec
    assert (spec.model_type, spec.hidden_size, spec.num_attention_heads, spec.num_hidden_layers,
            spec.intermediate_size, spec.layer_norm_eps) == ("distilbert", 32, 4, 2, 37, 1e-12)
    assert ours.bert.pooler is None and ours.dropout.p == 0.3  # seq_classif_dropout, a head option
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "distilbert" and saved["architectures"] == ["DistilBertForSequenceClassification"]
    assert (saved["dim"], saved["n_heads"], saved["n_layers"], saved["hidden_dim"]) == (32, 4, 2, 37)
    assert saved["seq_classif_dropout"] == 0.3 and "hidden_size" not in saved and "layer_norm_eps" not in saved
    qa = bertzoo.from_pretrained(folders["question-answering"], head="auto")
    assert qa.qa_outputs.p == 0.15  # qa_dropout


def test_sinusoidal_positions_initialise_as_transformers(tmp_path: Path) -> None:
    torch.manual_seed(0)
    hf = transformers.DistilBertModel(config(sinusoidal_pos_embds=True))
    ours = bertzoo.build("distilbert-base-uncased", hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                         intermediate_size=37, vocab_size=VOCAB, max_position_embeddings=64,
                         **{"components.embedding.options.sinusoidal": True})
    assert torch.equal(ours.embeddings.position_embeddings.weight, hf.embeddings.position_embeddings.weight)
    hf.save_pretrained(tmp_path / "hf")  # config.json's sinusoidal_pos_embds is the embedding option, both ways
    loaded = bertzoo.from_pretrained(tmp_path / "hf")
    assert loaded.spec.components.embedding.options == {"sinusoidal": True}
    loaded.save_pretrained(tmp_path / "ours")
    assert transformers.DistilBertConfig.from_pretrained(tmp_path / "ours").sinusoidal_pos_embds is True


def test_what_distilbert_lacks_is_refused_with_the_fix() -> None:
    from bertzoo.errors import IncompatibleComponentError, SpecError

    tiny = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37, vocab_size=VOCAB)
    with pytest.raises(IncompatibleComponentError, match="distilbert layer has no cross-attention.*layer='bert'"):
        bertzoo.build("distilbert-base-uncased", is_decoder=True, add_cross_attention=True, **tiny)
    with pytest.raises(SpecError, match="the distilbert family has no 'pretraining' head.*masked-lm"):
        bertzoo.build("distilbert-base-uncased", head="pretraining", **tiny)


# -- the main job ----------------------------------------------------------------------------------
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Hello world!", "Paris is the capital of France.", "ok"]


def check_tokenizer(folder: Path, token_types: bool) -> None:
    """bertzoo's tokenizer from tokenizer.json: ids, masks, offsets (and pair token types where the
    family takes them) equal transformers' fast tokenizer. DistilBERT's folders name BertTokenizer,
    which returns token types the model ignores; bertzoo leaves them out."""
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    ours = bertzoo.Tokenizer.from_folder(folder)
    pairs = [(t, TEXTS[0]) for t in TEXTS]
    for texts in (TEXTS, pairs):
        theirs = tok([t[0] for t in texts] if texts is pairs else texts, [t[1] for t in texts] if texts is pairs else None,
                     padding=True, truncation=True, max_length=64,  # the tiny models' max_position_embeddings
                     return_offsets_mapping=True, return_tensors="pt")
        mine = ours.encode_batch(texts, return_offsets=True)
        assert torch.equal(mine.input_ids, theirs["input_ids"]) and torch.equal(mine.attention_mask, theirs["attention_mask"])
        real = theirs["attention_mask"].bool()
        assert torch.equal(mine.offsets[real], theirs["offset_mapping"][real])
        assert mine.has_token_types == token_types  # the family's Family.token_types
        if token_types:
            assert torch.equal(mine.token_type_ids, theirs["token_type_ids"])


def check_embed(trunk_folder: Path, tmp: Path) -> None:
    """bertzoo.embed on a sentence-transformers folder: cos ≥ 0.99999 to its ``encode``."""
    from sentence_transformers import SentenceTransformer

    st = st_folder(trunk_folder, tmp / "st")
    expected = SentenceTransformer(str(st), device="cpu").encode(TEXTS, convert_to_numpy=True)
    ours = bertzoo.embed(TEXTS, model=st)
    cos = (ours * expected).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(expected, axis=1)
    assert cos.min() >= 0.99999, cos


def check_classify_and_rerank(folder: Path, rerank_folder: Path, arch: str) -> None:
    """classify: softmax of transformers' logits on its tokenizer's batch; rerank: CrossEncoder.rank."""
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    hf = getattr(transformers, arch).from_pretrained(folder).eval()
    with torch.no_grad():
        probs = hf(**tok(TEXTS, padding=True, return_tensors="pt")).logits.softmax(-1)
    ours = bertzoo.classify(TEXTS, model=folder, top_k=None)
    for row, p in zip(ours, probs, strict=True):
        got = {r["label"]: r["score"] for r in row}
        want = {hf.config.id2label[i]: float(s) for i, s in enumerate(p)}
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[k] for k in want], list(want.values()), atol=1e-5)
    from sentence_transformers import CrossEncoder

    query = "Where is Paris?"
    ranked = CrossEncoder(str(rerank_folder), device="cpu").rank(query, TEXTS)
    mine = bertzoo.rerank(query, TEXTS, model=rerank_folder)
    assert [r["index"] for r in mine] == [r["corpus_id"] for r in ranked]
    np.testing.assert_allclose([r["score"] for r in mine], [r["score"] for r in ranked], atol=1e-5)


def check_fill_mask(folder: Path) -> None:
    hf = transformers.pipeline("fill-mask", model=str(folder), device="cpu")
    text = f"Paris is the {hf.tokenizer.mask_token} of France."
    theirs = hf(text, top_k=3)
    ours = bertzoo.fill_mask(text, model=folder, top_k=3)
    assert [r["token"] for r in ours] == [r["token"] for r in theirs]
    np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=1e-5)


def check_token_classify(folder: Path) -> None:
    hf = transformers.pipeline("token-classification", model=str(folder), device="cpu", aggregation_strategy="simple")
    theirs, ours = hf(TEXTS), bertzoo.token_classify(TEXTS, model=folder, aggregation="simple")
    assert sum(len(t) for t in theirs) >= 1  # the oracle found entities, so the comparison means something
    for a, b in zip(ours, theirs, strict=True):
        assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in a] == [
            (e["entity_group"], e["word"], e["start"], e["end"]) for e in b]
        np.testing.assert_allclose([e["score"] for e in a], [float(e["score"]) for e in b], atol=1e-5)


def reference_answer(folder: Path, arch: str, question: str, context: str) -> dict[str, Any]:
    """transformers' span selection (``select_starts_ends``, the QA pipeline's rule) on one window."""
    from transformers.pipelines.document_question_answering import select_starts_ends

    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = getattr(transformers, arch).from_pretrained(folder).eval()
    enc = tok(question, context, return_offsets_mapping=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    p_mask = np.array([sid != 1 for sid in enc.sequence_ids(0)])
    p_mask[0] = False
    starts, ends, scores, _ = select_starts_ends(out.start_logits.numpy(), out.end_logits.numpy(), p_mask[None],
                                                 enc["attention_mask"].numpy(), max_answer_len=15)
    s, e = int(starts[0]), int(ends[0])
    first = enc.word_to_chars(0, enc.token_to_word(0, s), sequence_index=1)
    last = enc.word_to_chars(0, enc.token_to_word(0, e), sequence_index=1)
    return {"score": float(scores[0]), "start": first[0], "end": last[1], "answer": context[first[0]:last[1]]}


def check_answer(folder: Path, arch: str) -> None:
    question, context = "Where is the capital?", "The capital of France is Paris, a city on the Seine."
    ours, theirs = bertzoo.answer(question, context, model=folder), reference_answer(folder, arch, question, context)
    assert (ours["start"], ours["end"], ours["answer"]) == (theirs["start"], theirs["end"], theirs["answer"])
    assert ours["score"] == pytest.approx(theirs["score"], abs=1e-5)


def task_folders(root: Path, cfg: Any, tokenizer: Any, prefix: str) -> dict[str, Path]:
    """Tokenizer-equipped folders for the main job: trunk, classifier, cross-encoder, MLM, NER, QA."""
    ner = {0: "O", 1: "B-LOC", 2: "I-LOC"}
    specs = {
        "trunk": (f"{prefix}Model", {}),
        "classify": (f"{prefix}ForSequenceClassification", {"num_labels": 3}),
        "rerank": (f"{prefix}ForSequenceClassification", {"num_labels": 1}),
        "fill-mask": (f"{prefix}ForMaskedLM", {}),
        "token-classify": (f"{prefix}ForTokenClassification", {"id2label": ner, "label2id": {v: k for k, v in ner.items()}}),
        "answer": (f"{prefix}ForQuestionAnswering", {}),
    }
    out = {}
    for i, (task, (arch, extra)) in enumerate(specs.items()):
        torch.manual_seed(10 + i)
        model = getattr(transformers, arch)(cfg(vocab_size=len(tokenizer), **extra)).eval()
        perturb(model, seed=10 + i, scale=0.5)  # spread the outputs so rankings and labels mean something
        out[task] = make_folder(model, root / task, tokenizer)
    return out


@pytest.mark.slow
def test_the_main_job_on_distilbert_folders(tmp_path: Path) -> None:
    tokenizer = wordpiece_tokenizer(tmp_path / "vocab")
    folders = task_folders(tmp_path, config, tokenizer, "DistilBert")
    check_tokenizer(folders["trunk"], token_types=False)
    check_embed(folders["trunk"], tmp_path)
    check_classify_and_rerank(folders["classify"], folders["rerank"], "DistilBertForSequenceClassification")
    check_fill_mask(folders["fill-mask"])
    check_token_classify(folders["token-classify"])
    check_answer(folders["answer"], "DistilBertForQuestionAnswering")
