"""Every head on the default path (``attention="auto"``) with padded batches, against transformers.

Packed execution leaves zeros at padded positions where transformers computes values, so a head
whose outputs or loss cover padded positions (token logits, question-answering's softmax over the
whole sequence, a token loss whose labels include padding) must run the trunk padded; heads that
only read real tokens keep running packed. Same cases and tolerance as test_head_parity, without
attention weights (asking for them already forces the padded path).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from test_head_parity import ATOL, CASES, TINY, Case, flat, hf_class, inputs, max_diff, perturb, report

import bertzoo

transformers = pytest.importorskip("transformers")
from transformers import BertConfig  # noqa: E402

# labels on padded positions too: transformers counts them in the loss
PADDED_LABEL_CASES = [
    Case("token-classification-labels-on-padding", "token-classification",
         lambda x: {"labels": torch.randint(0, 5, x["input_ids"].shape, generator=torch.Generator().manual_seed(5))},
         options={"num_labels": 5}),
    Case("masked-lm-labels-on-padding", "masked-lm",
         lambda x: {"labels": torch.randint(0, TINY["vocab_size"], x["input_ids"].shape,
                                            generator=torch.Generator().manual_seed(6))}),
]
AUTO_CASES = [c for c in CASES + PADDED_LABEL_CASES if "encoder_hidden_states" not in c.call]


def auto_pair(case: Case) -> tuple[Any, Any]:
    """(HF eager model, bertzoo model on the default attention) with identical weights, eval."""
    cfg = {**TINY, **case.cfg}
    torch.manual_seed(0)
    hf = hf_class(case.head)(BertConfig(**cfg, **case.options, attn_implementation="eager")).eval()
    perturb(hf)
    ours = bertzoo.build(dict(cfg), head=case.head, **case.options).eval()
    ours.load_state_dict(hf.state_dict(), strict=True)
    # the default path packs encoders, so the test means something (decoders with a cache never pack)
    assert ours.bert.can_pack() or cfg.get("is_decoder")
    return hf, ours


@pytest.mark.parametrize("hidden", [False, True], ids=["outputs", "with-hidden-states"])
@pytest.mark.parametrize("case", AUTO_CASES, ids=[c.id for c in AUTO_CASES])
def test_padded_batch_on_auto_matches_transformers(case: Case, hidden: bool) -> None:
    hf, ours = auto_pair(case)
    x = inputs(case.head)
    assert bool((x["attention_mask"] == 0).any()), "the batch must hold padding"
    kwargs = {**x, **case.labels(x), **case.call, "output_hidden_states": hidden}
    theirs, mine = hf(**kwargs), ours(**kwargs)

    hf_fields = {k: v for k, v in theirs.items() if k != "cache"}
    our_fields = {k: v for k, v in mine.to_dict().items() if k != "past_key_values"}
    assert set(our_fields) == set(hf_fields)
    for name, value in hf_fields.items():
        assert report(f"{case.id} auto", name, max_diff(our_fields[name], value)) <= ATOL, name

    def scalar(out: Any) -> torch.Tensor:
        return out.loss if getattr(out, "loss", None) is not None else sum(t.float().mean() for t in flat(out[0]))

    scalar(theirs).backward()
    scalar(mine).backward()
    g_hf = {n: p.grad for n, p in hf.named_parameters(remove_duplicate=False) if p.grad is not None}
    g_ours = {n: p.grad for n, p in ours.named_parameters(remove_duplicate=False) if p.grad is not None}
    assert set(g_ours) == set(g_hf)
    assert report(f"{case.id} auto", "grads", max(max_diff(g_ours[n], g_hf[n]) for n in g_hf)) <= ATOL


@pytest.mark.parametrize("head", ["bertzoo:sequence-classification", "bertzoo:sentence-embedding"])
def test_heads_that_read_only_real_tokens_keep_running_packed(head: str) -> None:
    model = bertzoo.build(dict(TINY), head=head).eval()
    with torch.no_grad():
        model(**inputs(head))
    assert model.bert.last_call_packed


# BERT's heads and the generic ones (tests/families/ covers each family's own heads)
@pytest.mark.parametrize("head", [h for h in bertzoo.list_components("head")
                                  if bertzoo.get_registry().get("head", h).metadata.get("family") in (None, "bert")
                                  and getattr(bertzoo.get_registry().get("head", h).load(), "per_token_outputs", False)])
def test_per_token_heads_run_padded_on_auto(head: str) -> None:
    cfg = {**TINY, "is_decoder": True} if head.endswith("causal-lm") else dict(TINY)
    model = bertzoo.build(cfg, head=head).eval()
    with torch.no_grad():
        model(**inputs(head))
    assert not model.bert.last_call_packed
