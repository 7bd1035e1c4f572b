"""The trunk's family hooks, exercised with small plugins written here (no family code involved):

- a per-forward position component: an embedding's ``position_state`` (an ALiBi bias) made once per
  forward, put on the mask and honoured by eager, sdpa and flash, padded and packed;
- per-layer options: ``layer_index`` passed to layers that take it;
- pre-LN blocks: a layer class's ``final_norm`` becomes the trunk's ``final_norm`` (last hidden state);
- the conformance kit's position-bias and window cases on the built-in attentions.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from bertzoo import build
from bertzoo.discovery import get_registry
from bertzoo.interfaces import AttentionMask, Positions
from bertzoo.model.masks import windowed
from bertzoo.plugins import register_eager, register_flash, register_sdpa
from bertzoo.plugins.eager import BertEmbeddings, BertLayer
from bertzoo.registry import PluginRegistrar, Registry
from bertzoo.testing.attention import attention_cases

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=99,
            max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def alibi_slopes(heads: int) -> Tensor:
    """ALiBi's head slopes ``2^(-8 i / h)``, i = 1..h."""
    return torch.tensor([2.0 ** (-8.0 * (i + 1) / heads) for i in range(heads)])


class AlibiEmbeddings(BertEmbeddings):
    """BERT embeddings that hand every layer an ALiBi bias ``-slope · |i - j|`` (made once per forward)."""

    calls = 0

    def position_state(self, position_ids: Tensor, *, max_len: int, dtype: torch.dtype) -> Positions:
        type(self).calls += 1
        pos = torch.arange(max_len, device=position_ids.device)
        distance = (pos[None, :] - pos[:, None]).abs()  # (L, L)
        slopes = alibi_slopes(self.position_embeddings.embedding_dim // 8).to(position_ids.device)
        bias = -(slopes[:, None, None] * distance)[None]  # (1, h, L, L)
        return Positions(position_ids, max_len, bias=bias.to(dtype))


class IndexedPreLNLayer(BertLayer):
    """BERT's layer that records its ``layer_index`` and asks the trunk for a final norm."""

    def __init__(self, spec: Any, attention: Any, cross_attention: Any = None, *, layer_index: int = -1) -> None:
        super().__init__(spec, attention, cross_attention)
        self.layer_index = layer_index

    @classmethod
    def final_norm(cls, spec: Any) -> nn.Module:
        return nn.LayerNorm(spec.hidden_size)


def builtins(reg: Registry) -> Registry:
    for module in (register_eager, register_sdpa, register_flash):
        module.bertzoo_register(PluginRegistrar(reg, "bertzoo", "bertzoo"))
    return reg


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = builtins(Registry())
    test = PluginRegistrar(reg, "test", "test")
    test.register("embedding", "alibi", AlibiEmbeddings, description="ALiBi test embedding")
    test.register("layer", "indexed", IndexedPreLNLayer, description="test layer", supports_packed=True)
    return reg


def reference_alibi(model: Any, x: dict[str, Tensor]) -> Tensor:
    """The same model computed by hand in float64: BERT layers whose scores get the ALiBi bias."""
    model = model.double()
    h = model.embeddings(input_ids=x["input_ids"])
    n_heads = model.spec.num_attention_heads
    S = h.shape[1]
    d = h.shape[-1] // n_heads
    pos = torch.arange(S)
    bias = -(alibi_slopes(n_heads)[:, None, None].double() * (pos[None, :] - pos[:, None]).abs())  # (h, S, S)
    keep = x["attention_mask"].bool()[:, None, None, :]
    for layer in model.encoder.layer:
        att = layer.attention.self

        def heads(t: Tensor) -> Tensor:
            return t.view(t.shape[0], S, n_heads, d).transpose(1, 2)

        q, k, v = heads(att.query(h)), heads(att.key(h)), heads(att.value(h))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(d) + bias
        probs = scores.masked_fill(~keep, float("-inf")).softmax(-1)
        ctx = (probs @ v).transpose(1, 2).reshape(h.shape)
        a = layer.attention.output(ctx, h)
        h = layer.output(layer.intermediate(a), a)
    model.float()
    return h.float()


@pytest.mark.parametrize("attention", ["eager", "sdpa", "flash"])
def test_position_bias_made_once_and_honoured(registry: Registry, attention: str) -> None:
    torch.manual_seed(0)
    model = build(dict(TINY), registry=registry, embedding="test:alibi", attention=attention).eval()
    ids = torch.randint(5, 99, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    x = {"input_ids": ids, "attention_mask": mask}
    AlibiEmbeddings.calls = 0
    with torch.no_grad():
        got = model(**x).last_hidden_state
        assert AlibiEmbeddings.calls == 1  # once per forward, not per layer
        want = reference_alibi(model, x)
        real = mask.bool()
        assert float((got[real] - want[real]).abs().max()) < 1e-5
        if attention == "flash":
            assert model.last_call_packed
            cu = torch.nn.functional.pad(real.sum(1).cumsum(0), (1, 0)).int()
            packed = model.forward_packed(ids[real], cu)
            assert float((packed - want[real]).abs().max()) < 1e-5


def test_layer_index_and_final_norm(registry: Registry) -> None:
    torch.manual_seed(0)
    model = build(dict(TINY, num_hidden_layers=3), registry=registry, layer="test:indexed").eval()
    assert [layer.layer_index for layer in model.encoder.layer] == [0, 1, 2]
    assert isinstance(model.final_norm, nn.LayerNorm)
    assert "final_norm.weight" in model.state_dict()
    with torch.no_grad():
        model.final_norm.weight.mul_(3.0)
        ids = torch.randint(5, 99, (2, 6))
        out = model(input_ids=ids, output_hidden_states=True)
        # the last hidden state, and the last hidden_states entry, are after the final norm
        assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
        plain = build(dict(TINY, num_hidden_layers=3), registry=registry).eval()
        assert plain.final_norm is None and "final_norm.weight" not in plain.state_dict()


def test_windowed_masks_are_made_once_per_forward() -> None:
    mask = AttentionMask(key_padding=torch.ones(2, 5, dtype=torch.bool))
    local = windowed(mask, 2)
    assert windowed(mask, 2) is local and windowed(mask, None) is mask and local.window == 2
    assert local.key_padding is mask.key_padding and local.cache is not mask.cache


@pytest.mark.parametrize("name", ["eager", "sdpa", "flash"])
def test_kit_position_cases_on_builtin_attentions(name: str) -> None:
    """The built-in ops honour mask.bias and mask.window: the kit's cases, with the flags declared."""
    source = get_registry().get("attention", name)
    reg = Registry()
    caps = {**source.capabilities, "position_bias": True, "window": True}
    PluginRegistrar(reg, "bertzoo", "bertzoo").register("attention", name, source.target, description="test",
                                                       capabilities=caps)
    cases = [c for c in attention_cases(reg.get("attention", name), {}, reg)
             if c.name.split("[")[0] in ("position-bias", "window", "position-bias+window")]
    assert len(cases) >= 6
    for case in cases:
        case.run()
