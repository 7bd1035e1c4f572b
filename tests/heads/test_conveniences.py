"""transformers' model conveniences on every head, against transformers 5 itself: embeddings
access, ``resize_token_embeddings`` (same seed → same new rows), ``num_parameters``, dtype /
device, gradient checkpointing (gradients equal to a run without it)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from test_head_parity import TINY, hf_class, inputs, perturb

import bertzoo
import bertzoo.model.trunk as trunk_module
from bertzoo.errors import InputError

transformers = pytest.importorskip("transformers")
from transformers import BertConfig  # noqa: E402

HF_HEADS = [h for h in bertzoo.list_components("head") if hf_class(h) is not None and h.startswith("bertzoo:")
            and not h.endswith(":sentence-embedding")
            and bertzoo.get_registry().get("head", h).metadata.get("family") == "bert"]  # BertConfig below
MLM_HEADS = ["bertzoo:masked-lm", "bertzoo:pretraining", "bertzoo:causal-lm"]


def pair(head: str, **cfg: Any) -> tuple[Any, Any]:
    """(HF model, bertzoo model) with identical perturbed weights, eval."""
    cfg = {**TINY, **cfg}
    torch.manual_seed(0)
    hf = hf_class(head)(BertConfig(**cfg, attn_implementation="eager")).eval()
    perturb(hf)
    ours = bertzoo.build(dict(cfg), attention="eager", head=head).eval()
    ours.load_state_dict(hf.state_dict(), strict=True)
    return hf, ours


@pytest.mark.parametrize("head", HF_HEADS)
def test_embeddings_access_counts_dtype_and_device_match_transformers(head: str) -> None:
    hf, ours = pair(head)
    assert ours.get_input_embeddings() is ours.bert.embeddings.word_embeddings
    hf_out, our_out = hf.get_output_embeddings(), ours.get_output_embeddings()
    assert (hf_out is None) == (our_out is None)
    if our_out is not None:
        assert our_out is ours.cls.predictions.decoder and our_out.weight.shape == hf_out.weight.shape
    for only_trainable in (False, True):
        for exclude_embeddings in (False, True):
            assert ours.num_parameters(only_trainable, exclude_embeddings) == hf.num_parameters(
                only_trainable=only_trainable, exclude_embeddings=exclude_embeddings)
    assert ours.dtype == hf.dtype == torch.float32 and ours.device == hf.device
    replacement = torch.nn.Embedding(TINY["vocab_size"], TINY["hidden_size"])
    ours.set_input_embeddings(replacement)
    assert ours.get_input_embeddings() is replacement is ours.bert.embeddings.word_embeddings


def test_set_output_embeddings_replaces_the_decoder_and_refuses_heads_without_one() -> None:
    _, ours = pair("bertzoo:masked-lm", tie_word_embeddings=False)
    new = torch.nn.Linear(TINY["hidden_size"], TINY["vocab_size"])
    ours.set_output_embeddings(new)
    assert ours.get_output_embeddings() is new
    _, classifier = pair("bertzoo:token-classification")
    with pytest.raises(InputError, match="no output embeddings"):
        classifier.set_output_embeddings(new)


@pytest.mark.parametrize("size", [113, 90], ids=["grow", "shrink"])
@pytest.mark.parametrize("mean_resizing", [True, False], ids=["mean", "normal"])
@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("head", MLM_HEADS + ["bertzoo:token-classification"])
def test_resize_token_embeddings_matches_transformers(head: str, tie: bool, mean_resizing: bool, size: int) -> None:
    cfg: dict[str, Any] = {"tie_word_embeddings": tie}
    if head.endswith("causal-lm"):
        cfg["is_decoder"] = True
    hf, ours = pair(head, **cfg)
    torch.manual_seed(7)
    hf.resize_token_embeddings(size, mean_resizing=mean_resizing)
    torch.manual_seed(7)
    returned = ours.resize_token_embeddings(size, mean_resizing=mean_resizing)
    assert returned is ours.get_input_embeddings() and returned.num_embeddings == size
    assert ours.spec.vocab_size == hf.config.vocab_size == size
    theirs, mine = hf.state_dict(), ours.state_dict()
    assert list(mine) == list(theirs)
    for key, value in theirs.items():
        assert mine[key].shape == value.shape, key
        torch.testing.assert_close(mine[key], value, rtol=0, atol=0, msg=key)
    if tie and ours.get_output_embeddings() is not None:
        assert ours.get_output_embeddings().weight is ours.get_input_embeddings().weight
    # the resized model runs the new ids, loss included, as transformers does
    x = inputs(head)
    x["input_ids"] %= size
    x["input_ids"][0, 1] = size - 1
    labels = {"labels": x["input_ids"].clone()} if ours.get_output_embeddings() is not None else {}
    with torch.no_grad():
        a, b = hf(**x, **labels), ours(**x, **labels)
    assert (a.logits if hasattr(a, "logits") else a.prediction_logits).shape == (
        b.logits if hasattr(b, "logits") else b.prediction_logits).shape
    if labels:
        torch.testing.assert_close(b.loss, a.loss, rtol=0, atol=1e-5)


def test_resize_pads_to_a_multiple_and_checks_its_arguments() -> None:
    hf, ours = pair("bertzoo:masked-lm")
    torch.manual_seed(3)
    hf.resize_token_embeddings(101, pad_to_multiple_of=8)
    torch.manual_seed(3)
    ours.resize_token_embeddings(101, pad_to_multiple_of=8)
    assert ours.get_input_embeddings().num_embeddings == hf.get_input_embeddings().num_embeddings == 104
    assert ours.resize_token_embeddings() is ours.get_input_embeddings()
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="new_num_tokens"):
            ours.resize_token_embeddings(bad)
    with pytest.raises(InputError, match="pad_to_multiple_of"):
        ours.resize_token_embeddings(120, pad_to_multiple_of=0)


@pytest.mark.parametrize("attention", ["auto", "eager"])
@pytest.mark.parametrize("head", ["bertzoo:sequence-classification", "bertzoo:masked-lm"])
def test_gradient_checkpointing_gives_the_same_gradients(
    head: str, attention: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = trunk_module.checkpoint

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(trunk_module, "checkpoint", counting)
    x = inputs(head)
    labels = {"labels": torch.tensor([0, 1, 0])} if head.endswith("classification") else {"labels": x["input_ids"]}

    def gradients(checkpointing: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = bertzoo.build(dict(TINY), attention=attention, head=head).train()  # dropout on
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert model.is_gradient_checkpointing
        torch.manual_seed(1)
        model(**x, **labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = gradients(False)
    assert calls == []
    checkpointed = gradients(True)
    assert len(calls) == TINY["num_hidden_layers"]
    assert set(plain) == set(checkpointed)
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=0, atol=1e-6, msg=name)


def test_gradient_checkpointing_is_off_in_eval_and_after_disable(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(trunk_module, "checkpoint", lambda *a, **k: calls.append(1))
    model = bertzoo.build(dict(TINY), head="bertzoo:sequence-classification")
    model.gradient_checkpointing_enable()
    model.eval()(**inputs("bertzoo:sequence-classification"))
    model.train().gradient_checkpointing_disable()
    assert not model.is_gradient_checkpointing
    model(**inputs("bertzoo:sequence-classification"))
    assert calls == []
