"""The mean-regression head: loss rule, label checks, checkpoints, conformance."""

import pytest
import torch
import torch.nn.functional as F

import bertzoo
from bertzoo.errors import InputError
from bertzoo.testing import check_component

TINY = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 37}


def test_conforms():
    check_component("head", "example:mean-regression")
    check_component("head", "example:mean-regression", options={"num_targets": 3})


def test_loss_is_mse_of_the_mean_of_real_tokens():
    model = bertzoo.build(dict(TINY), head="mean-regression", num_targets=2).eval()
    ids = torch.randint(1, 100, (2, 5))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    labels = torch.randn(2, 2)
    out = model(ids, attention_mask=mask, labels=labels)
    tokens = model.bert(ids, attention_mask=mask).last_hidden_state
    pooled = torch.stack([tokens[0].mean(0), tokens[1, :2].mean(0)])
    expected = model.regressor(pooled)
    torch.testing.assert_close(out.predictions, expected)
    torch.testing.assert_close(out.loss, F.mse_loss(expected, labels))
    assert model.bert.pooler is None  # uses_pooler = False


def test_labels_are_checked():
    model = bertzoo.build(dict(TINY), head="mean-regression")
    ids = torch.randint(1, 100, (2, 5))
    with pytest.raises(InputError, match="floating point"):
        model(ids, labels=torch.tensor([1, 2]))
    with pytest.raises(InputError, match=r"shape \(3,\)"):
        model(ids, labels=torch.randn(3))


def test_round_trip_and_head_auto(tmp_path):
    model = bertzoo.build(dict(TINY), head="mean-regression", num_targets=2).eval()
    model.save_pretrained(tmp_path / "reg")
    loaded = bertzoo.from_pretrained(tmp_path / "reg", head="auto")
    ids = torch.randint(1, 100, (2, 5))
    with torch.no_grad():
        assert torch.equal(loaded(ids).predictions, model(ids).predictions)
    assert loaded.num_targets == 2
