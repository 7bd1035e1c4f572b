"""The sliding-window attention: conformance, windowing, options."""

import pytest
import torch
from bertzoo_example.attention import SlidingWindowAttention, window_band

import bertzoo
from bertzoo.errors import IncompatibleComponentError, SpecError
from bertzoo.interfaces import AttentionMask
from bertzoo.testing import attention_reference, check_component


def band(window):
    """What the window lets each query see, for the conformance kit's reference."""
    return lambda s_q, s_k, offset: window_band(s_q, s_k, offset, window)


def test_conforms_with_the_default_window():
    report = check_component("attention", "example:sliding-window")
    assert report.ok and len(report.passed) > 30


@pytest.mark.parametrize("window", [1, 3])
def test_conforms_with_a_short_window_against_the_windowed_reference(window):
    """Every case of the kit (padding, causal, cache offset, dtypes, dropout) with a real window."""
    check_component("attention", "example:sliding-window", options={"window": window}, visible=band(window))


def test_a_short_window_is_not_full_attention():
    """The kit's cases would fail without `visible`: the window really restricts the keys."""
    report = check_component("attention", "example:sliding-window", options={"window": 1}, raise_on_failure=False)
    failed = " ".join(report.failed)
    assert "padding[none,fp32]" in failed and "max |diff|" in " ".join(report.failed.values())


def test_window_at_least_the_length_equals_eager_in_a_model():
    torch.manual_seed(0)
    eager = bertzoo.build("bert-tiny", attention="eager").eval()
    window = bertzoo.build("bert-tiny", attention="example:sliding-window", window=16).eval()
    window.load_state_dict(eager.state_dict())
    ids = torch.randint(1, 1000, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 10:] = 0
    with torch.no_grad():
        a = eager(ids, attention_mask=mask).last_hidden_state
        b = window(ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(b[mask.bool()], a[mask.bool()], atol=1e-5, rtol=0)


def test_window_option_is_validated_with_its_path():
    with pytest.raises(SpecError, match=r"components\.attention\.options\.window"):
        bertzoo.build("bert-tiny", attention="example:sliding-window", window=0)
    with pytest.raises(SpecError, match=r"components\.attention\.options\.windw"):
        bertzoo.build({"components": {"attention": {"name": "example:sliding-window", "options": {"windw": 4}}}})


def test_each_query_sees_only_its_window():
    q, k, v = (torch.randn(1, 2, 6, 4) for _ in range(3))
    mask = AttentionMask()
    out, _ = SlidingWindowAttention(window=2)(q, k, v, mask=mask, scale=0.5)
    ref, probs = attention_reference(q, k, v, mask, 0.5, visible=band(2))
    torch.testing.assert_close(out.double(), ref, atol=1e-6, rtol=0)
    assert probs[0, 0, 0, 3:].eq(0).all() and probs[0, 0, 5, :3].eq(0).all()


def test_refuses_what_it_does_not_declare():
    q = torch.randn(1, 2, 4, 8)
    with pytest.raises(IncompatibleComponentError, match="weights"):
        SlidingWindowAttention()(q, q, q, mask=AttentionMask(), need_weights=True)
    encoder = torch.randn(1, 2, 7, 8)
    with pytest.raises(IncompatibleComponentError, match="cross-attention"):
        SlidingWindowAttention()(q, encoder, encoder, mask=AttentionMask())
