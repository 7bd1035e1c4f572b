"""Every head against its transformers class: logits, losses, gradients, tuples, and checkpoints.

Tiny random models (hidden 32, 2 layers, 4 heads, intermediate 37, vocab 100), eager attention,
fp32, eval mode (dropout off). The HF model's weights are perturbed (so biases and LayerNorms
are not at their trivial init) and copied into the bertzoo model, whose state-dict keys must
equal HF's in order. Each comparison prints its max abs diff (``pytest -s`` shows them).

The generic tests are parametrized over ``bertzoo.list_components("head")`` (timm style): a new
head gets the build / tuple / round-trip tests for free, and its transformers parity when its
registry metadata names a transformers class (``hf_architecture``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

import bertzoo
from bertzoo.discovery import get_registry

transformers = pytest.importorskip("transformers")
from transformers import BertConfig  # noqa: E402

TINY: dict[str, Any] = dict(
    vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=37, max_position_embeddings=64,
)
ATOL = 1e-5
B, C, S = 3, 4, 9
# BERT's heads and the generic ones, against Bert* classes (tests/families/ covers each family's heads)
HEADS = [h for h in bertzoo.list_components("head")
         if bertzoo.get_registry().get("head", h).metadata.get("family") in (None, "bert")]


def report(case: str, what: str, diff: float) -> float:
    print(f"\n[head parity] {case} {what}: max abs diff {diff:.3g}")
    return diff


def hf_class(head: str) -> Any:
    """The transformers class a head reads and writes (BertModel for sentence-transformers folders)."""
    arch = get_registry().get("head", head).metadata.get("hf_architecture")
    if arch == "SentenceTransformer":
        arch = "BertModel"
    return getattr(transformers, arch, None) if arch else None


def inputs(head: str, seed: int = 1) -> dict[str, torch.Tensor]:
    """Right-padded ids, mask and token types; (B, C, S) for multiple choice."""
    g = torch.Generator().manual_seed(seed)
    shape = (B, C, S) if head.endswith("multiple-choice") else (B, S)
    ids = torch.randint(1, TINY["vocab_size"], shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[1, ..., S - 4:] = 0
    types = torch.zeros(shape, dtype=torch.long)
    types[..., S // 2:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def perturb(model: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # shared (tied) parameters appear once
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def pair(head: str, cfg: dict[str, Any] | None = None, options: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """(HF model, bertzoo model) with identical weights, both eval. ``options`` go to the HF config
    and to the bertzoo head alike (num_labels, problem_type, id2label)."""
    cfg = {**TINY, **(cfg or {})}
    options = options or {}
    torch.manual_seed(0)
    hf = hf_class(head)(BertConfig(**cfg, **options, attn_implementation="eager")).eval()
    perturb(hf)
    ours = bertzoo.build(dict(cfg), attention="eager", head=head, **options).eval()
    hf_sd = hf.state_dict()
    assert list(ours.state_dict()) == list(hf_sd), "state_dict keys (and order) must equal HF's"
    ours.load_state_dict(hf_sd, strict=True)
    return hf, ours


def flat(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in flat(v)]
    return []


def max_diff(a: Any, b: Any) -> float:
    ta, tb = flat(a), flat(b)
    assert len(ta) == len(tb), f"{len(ta)} tensors vs {len(tb)}"
    diff = 0.0
    for x, y in zip(ta, tb, strict=True):
        assert x.shape == y.shape, f"{tuple(x.shape)} vs {tuple(y.shape)}"
        diff = max(diff, float((x.detach().float() - y.detach().float()).abs().max()) if x.numel() else 0.0)
    return diff


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad for n, p in model.named_parameters(remove_duplicate=False) if p.grad is not None}


# -- the cases: one per loss rule ---------------------------------------------------------------------
@dataclass
class Case:
    id: str
    head: str
    labels: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] = lambda x: {}
    cfg: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    call: dict[str, Any] = field(default_factory=dict)  # extra forward kwargs


def _g(seed: int = 2) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def token_labels(x: dict[str, torch.Tensor], high: int) -> torch.Tensor:
    labels = torch.randint(0, high, x["input_ids"].shape, generator=_g())
    return labels.masked_fill(x["attention_mask"] == 0, -100)


def mlm_labels(x: dict[str, torch.Tensor]) -> torch.Tensor:
    labels = token_labels(x, TINY["vocab_size"])
    keep = torch.rand(labels.shape, generator=_g(3)) < 0.4
    return labels.masked_fill(~keep, -100)


CASES = [
    Case("pretraining-both", "pretraining",
         lambda x: {"labels": mlm_labels(x), "next_sentence_label": torch.tensor([0, 1, 1])}),
    Case("pretraining-mlm-only-no-loss", "pretraining", lambda x: {"labels": mlm_labels(x)}),
    Case("masked-lm", "masked-lm", lambda x: {"labels": mlm_labels(x)}),
    Case("masked-lm-untied", "masked-lm", lambda x: {"labels": mlm_labels(x)}, cfg={"tie_word_embeddings": False}),
    Case("causal-lm", "causal-lm", lambda x: {"labels": token_labels(x, TINY["vocab_size"])}, cfg={"is_decoder": True}),
    Case("causal-lm-keep-2", "causal-lm", cfg={"is_decoder": True}, call={"logits_to_keep": 2}),
    Case("causal-lm-cross-attention", "causal-lm", lambda x: {"labels": token_labels(x, TINY["vocab_size"])},
         cfg={"is_decoder": True, "add_cross_attention": True},
         call={"encoder_hidden_states": torch.randn(B, 5, TINY["hidden_size"], generator=_g(4))}),
    Case("next-sentence", "next-sentence", lambda x: {"labels": torch.tensor([1, 0, 1])}),
    Case("seq-single-label-inferred", "sequence-classification",
         lambda x: {"labels": torch.tensor([2, 0, 1])}, options={"num_labels": 3}),
    Case("seq-single-label-ignore-100", "sequence-classification",
         lambda x: {"labels": torch.tensor([2, -100, 1])}, options={"num_labels": 3}),
    Case("seq-multi-label-inferred", "sequence-classification",
         lambda x: {"labels": torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 1, 1]])}, options={"num_labels": 3}),
    Case("seq-regression-inferred", "sequence-classification",
         lambda x: {"labels": torch.tensor([0.5, -1.0, 2.0])}, options={"num_labels": 1}),
    Case("seq-regression-explicit-3", "sequence-classification",
         lambda x: {"labels": torch.randn(B, 3, generator=_g())},
         options={"num_labels": 3, "problem_type": "regression"}),
    Case("seq-single-label-explicit", "sequence-classification",
         lambda x: {"labels": torch.tensor([1, 1, 0])},
         options={"num_labels": 2, "problem_type": "single_label_classification"}),
    Case("seq-multi-label-explicit", "sequence-classification",
         lambda x: {"labels": torch.tensor([[1.0, 0], [0, 1], [1, 1]])},
         options={"num_labels": 2, "problem_type": "multi_label_classification"}),
    Case("multiple-choice", "multiple-choice", lambda x: {"labels": torch.tensor([3, 0, 2])}),
    Case("token-classification", "token-classification", lambda x: {"labels": token_labels(x, 5)},
         options={"num_labels": 5}),
    Case("question-answering", "question-answering",
         # row 1: both inside; row 2: start beyond S (clamped to S = ignored); row 0: (B, 1) shaped
         lambda x: {"start_positions": torch.tensor([[2], [0], [S + 7]]), "end_positions": torch.tensor([[5], [3], [4]])}),
    Case("question-answering-negative", "question-answering",
         lambda x: {"start_positions": torch.tensor([-3, 1, 2]), "end_positions": torch.tensor([4, S, 8])}),
]
# every head a transformers class implements, without labels (sentence-embedding is tested against ST)
CASES += [Case(f"{h.split(':')[1]}-no-labels", h) for h in HEADS
          if hf_class(h) is not None and not h.endswith(":sentence-embedding")]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_forward_loss_and_gradients_match_transformers(case: Case) -> None:
    hf, ours = pair(case.head, case.cfg, case.options)
    x = inputs(case.head)
    labels = case.labels(x)
    kwargs = {**x, **labels, **case.call, "output_hidden_states": True, "output_attentions": True}
    theirs = hf(**kwargs)
    mine = ours(**kwargs)

    hf_fields = {k: v for k, v in theirs.items() if k != "cache"}
    our_fields = {k: v for k, v in mine.to_dict().items() if k != "past_key_values"}
    assert set(our_fields) == set(hf_fields), f"fields {sorted(our_fields)} vs HF {sorted(hf_fields)}"
    for name, value in hf_fields.items():
        assert report(case.id, name, max_diff(our_fields[name], value)) <= ATOL, name
    if "loss" in hf_fields:
        assert mine.loss.shape == theirs.loss.shape == ()

    # gradients of the loss (or of the logits when there is no loss) for every parameter
    def scalar(out: Any) -> torch.Tensor:
        return out.loss if getattr(out, "loss", None) is not None else sum(t.float().mean() for t in flat(out[0]))

    scalar(theirs).backward()
    scalar(mine).backward()
    g_hf, g_ours = grads(hf), grads(ours)
    assert set(g_ours) == set(g_hf)
    assert report(case.id, "grads", max(max_diff(g_ours[n], g_hf[n]) for n in g_hf)) <= ATOL


@pytest.mark.parametrize("case", [c for c in CASES if c.labels(inputs(c.head))], ids=lambda c: c.id)
def test_return_dict_false_gives_hf_tuple(case: Case) -> None:
    hf, ours = pair(case.head, case.cfg, case.options)
    x = inputs(case.head)
    kwargs = {**x, **case.labels(x), **case.call, "return_dict": False, "output_hidden_states": True}
    with torch.no_grad():
        theirs, mine = hf(**kwargs), ours(**kwargs)
    assert isinstance(mine, tuple)
    assert len(mine) == len(theirs)
    for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        assert report(case.id, f"tuple[{i}]", max_diff(a, b)) <= ATOL


def test_pretraining_loss_is_the_sum_of_mlm_and_nsp() -> None:
    _, ours = pair("pretraining")
    x = inputs("pretraining")
    labels, nsp = mlm_labels(x), torch.tensor([0, 1, 0])
    with torch.no_grad():
        out = ours(**x, labels=labels, next_sentence_label=nsp)
        logits, seq = out.prediction_logits, out.seq_relationship_logits
    expected = torch.nn.functional.cross_entropy(logits.view(-1, TINY["vocab_size"]), labels.view(-1)) + \
        torch.nn.functional.cross_entropy(seq, nsp)
    torch.testing.assert_close(out.loss, expected)
    assert ours(**x, next_sentence_label=nsp).loss is None


def test_causal_lm_cache_continues_the_sequence_and_labels_switch_it_off() -> None:
    hf, ours = pair("causal-lm", {"is_decoder": True})
    x = inputs("causal-lm")
    ids = x["input_ids"]
    with torch.no_grad():
        full = ours(ids).logits
        first = ours(ids[:, :5], use_cache=True)
        assert first.past_key_values is not None
        rest = ours(ids[:, 5:], past_key_values=first.past_key_values)
        assert report("causal-lm", "cached continuation", max_diff(rest.logits, full[:, 5:])) <= ATOL
        assert report("causal-lm", "vs HF full", max_diff(full, hf(ids).logits)) <= ATOL
        assert ours(ids, labels=ids, use_cache=True).past_key_values is None  # HF: labels force use_cache=False


def test_sequence_classification_problem_type_is_sticky_and_saved(tmp_path: Path) -> None:
    _, ours = pair("sequence-classification", options={"num_labels": 3})
    x = inputs("sequence-classification")
    ours(**x, labels=torch.tensor([0, 1, 2]))
    assert ours.problem_type == "single_label_classification"
    with pytest.raises(bertzoo.InputError, match="single_label_classification"):
        ours(**x, labels=torch.rand(B, 3))  # HF fails here too, less clearly
    ours.save_pretrained(tmp_path / "m")
    hf = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "m")
    assert hf.config.problem_type == "single_label_classification"


@pytest.mark.parametrize(
    ("head", "uses_pooler"),
    [("pretraining", True), ("masked-lm", False), ("causal-lm", False), ("next-sentence", True),
     ("sequence-classification", True), ("multiple-choice", True), ("token-classification", False),
     ("question-answering", False), ("sentence-embedding", True)],
)
def test_pooler_presence_follows_hf(head: str, uses_pooler: bool) -> None:
    model = bertzoo.build(dict(TINY), head=head)
    assert (model.bert.pooler is not None) is uses_pooler
    assert any(k.startswith("bert.pooler.") for k in model.state_dict()) is uses_pooler


def test_mlm_decoder_is_tied_to_word_embeddings_only_when_asked() -> None:
    tied = bertzoo.build(dict(TINY), head="masked-lm")
    pred = tied.cls.predictions
    assert pred.decoder.weight is tied.bert.embeddings.word_embeddings.weight
    assert pred.decoder.bias is pred.bias
    assert float(pred.bias.detach().abs().max()) == 0.0  # HF zeroes the MLM bias
    assert float(pred.decoder.weight[0].detach().abs().max()) == 0.0  # the padding row stays zero through the tie
    untied = bertzoo.build(dict(TINY), head="masked-lm", tie_word_embeddings=False)
    pred = untied.cls.predictions
    assert pred.decoder.weight is not untied.bert.embeddings.word_embeddings.weight
    assert pred.decoder.bias is not pred.bias


@pytest.mark.parametrize(("dropout", "expected"), [(None, 0.1), (0.3, 0.3)])
def test_classifier_dropout_falls_back_to_hidden_dropout(dropout: float | None, expected: float) -> None:
    for head in ("sequence-classification", "multiple-choice", "token-classification"):
        model = bertzoo.build(dict(TINY, classifier_dropout=dropout), head=head)
        assert model.dropout.p == expected


def test_init_follows_hf_rules() -> None:
    torch.manual_seed(0)
    model = bertzoo.build(dict(TINY, initializer_range=0.5), head="sequence-classification", num_labels=3)
    assert float(model.classifier.bias.detach().abs().max()) == 0.0
    assert 0.3 < float(model.classifier.weight.detach().std()) < 0.7  # N(0, initializer_range)
    qa = bertzoo.build(dict(TINY), head="question-answering")
    assert float(qa.qa_outputs.bias.detach().abs().max()) == 0.0
    pre = bertzoo.build(dict(TINY), head="pretraining")
    ln = pre.cls.predictions.transform.LayerNorm
    assert bool((ln.weight == 1).all()) and bool((ln.bias == 0).all())


# -- generic, over every registered head -----------------------------------------------------------
def _short(head: str) -> str:
    return head.split(":", 1)[1]


@pytest.mark.parametrize("head", HEADS)
def test_head_is_registered_with_description_and_builds(head: str) -> None:
    record = get_registry().get("head", head)
    assert record.description
    if record.namespace == "bertzoo":  # ours say which transformers class they match (None = none)
        assert "hf_architecture" in record.metadata
    model = bertzoo.build(dict(TINY), head=head).eval()
    assert isinstance(type(model).uses_pooler, bool)
    assert isinstance(type(model).classifier_keys, tuple)
    keys = list(model.state_dict())
    for key in type(model).classifier_keys:  # a key, or a module prefix of keys
        assert any(k == key or k.startswith(key + ".") for k in keys), key
    with torch.no_grad():
        out = model(**inputs(head))
        as_tuple = model(**inputs(head), return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(out.to_tuple())
    for a, b in zip(as_tuple, out.to_tuple(), strict=True):
        assert max_diff(a, b) == 0.0


@pytest.mark.parametrize("head", HEADS)
def test_transformers_saves_bertzoo_loads(head: str, tmp_path: Path) -> None:
    cls = hf_class(head)
    if cls is None:
        pytest.skip(f"{head} names no transformers class (hf_architecture)")
    cfg = dict(TINY, is_decoder=_short(head) == "causal-lm")
    torch.manual_seed(0)
    hf = cls(BertConfig(**cfg, attn_implementation="eager")).eval()
    perturb(hf)
    hf.save_pretrained(tmp_path / "hf")
    ours = bertzoo.from_pretrained(tmp_path / "hf", head=head, attention="eager")
    report_ = ours.load_report
    assert not report_.missing and not report_.unexpected and not report_.mismatched, report_.summary()
    x = inputs(head)
    with torch.no_grad():
        theirs, mine = hf(**x), ours(**x)
    if cls.__name__ == "BertModel":  # sentence-embedding: token embeddings = last hidden state
        diff = max_diff(mine.token_embeddings, theirs.last_hidden_state)
    else:
        diff = max_diff(mine.to_tuple(), tuple(v for k, v in theirs.items() if k != "cache"))
    assert report(head, "hf save -> bertzoo load", diff) <= ATOL
    if cls.__name__ != "BertModel":
        auto = bertzoo.from_pretrained(tmp_path / "hf", head="auto")
        assert type(auto) is type(ours)


@pytest.mark.parametrize("head", HEADS)
def test_bertzoo_saves_transformers_loads(head: str, tmp_path: Path) -> None:
    cls = hf_class(head)
    if cls is None:
        pytest.skip(f"{head} names no transformers class (hf_architecture)")
    cfg = dict(TINY, is_decoder=_short(head) == "causal-lm")
    ours = bertzoo.build(dict(cfg), attention="eager", head=head).eval()
    perturb(ours)
    ours.save_pretrained(tmp_path / "ours")
    hf, info = cls.from_pretrained(tmp_path / "ours", output_loading_info=True, attn_implementation="eager")
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    hf.eval()
    x = inputs(head)
    with torch.no_grad():
        theirs, mine = hf(**x), ours(**x)
    if cls.__name__ == "BertModel":
        diff = max_diff(mine.token_embeddings, theirs.last_hidden_state)
    else:
        diff = max_diff(mine.to_tuple(), tuple(v for k, v in theirs.items() if k != "cache"))
    assert report(head, "bertzoo save -> hf load", diff) <= ATOL
    back = bertzoo.from_pretrained(tmp_path / "ours", head="auto", attention="eager")
    assert type(back) is type(ours) and back.load_report.clean


# -- labels through checkpoints ---------------------------------------------------------------------
LABELS = {0: "negative", 1: "neutral", 2: "positive"}


@pytest.mark.parametrize("head", ["sequence-classification", "token-classification"])
def test_id2label_survives_both_directions(head: str, tmp_path: Path) -> None:
    ours = bertzoo.build(dict(TINY), head=head, id2label=LABELS)
    assert ours.num_labels == 3 and ours.label2id == {v: k for k, v in LABELS.items()}
    ours.save_pretrained(tmp_path / "ours")
    hf = hf_class(head).from_pretrained(tmp_path / "ours")
    assert hf.config.id2label == LABELS and hf.config.label2id == {v: k for k, v in LABELS.items()}
    hf.config.id2label = {0: "B-PER", 1: "I-PER", 2: "O", 3: "B-LOC"}
    hf.config.label2id = {v: k for k, v in hf.config.id2label.items()}
    hf = hf_class(head)(hf.config)
    hf.save_pretrained(tmp_path / "hf")
    back = bertzoo.from_pretrained(tmp_path / "hf", head=head)
    assert back.id2label == hf.config.id2label and back.num_labels == 4
    assert back.classifier.out_features == 4


def test_classifier_checkpoint_loads_its_classifier(tmp_path: Path) -> None:
    torch.manual_seed(0)
    hf = transformers.BertForSequenceClassification(
        BertConfig(**TINY, num_labels=3, attn_implementation="eager")).eval()
    hf.save_pretrained(tmp_path / "hf")
    ours = bertzoo.from_pretrained(tmp_path / "hf", head="sequence-classification")
    torch.testing.assert_close(ours.classifier.weight, hf.classifier.weight, rtol=0, atol=0)
    assert ours.load_report.newly_initialized == []


def test_trunk_checkpoint_into_a_head_reports_new_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    transformers.BertModel(BertConfig(**TINY)).save_pretrained(tmp_path / "trunk")
    model = bertzoo.from_pretrained(tmp_path / "trunk", head="sequence-classification", num_labels=4)
    assert sorted(model.load_report.newly_initialized) == ["classifier.bias", "classifier.weight"]
    mlm = bertzoo.from_pretrained(tmp_path / "trunk", head="masked-lm")
    new = set(mlm.load_report.newly_initialized)
    assert "cls.predictions.transform.dense.weight" in new and "cls.predictions.bias" in new
    assert "bert.embeddings.word_embeddings.weight" not in new
