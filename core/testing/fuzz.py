"""Fuzz properties for spec, build, forward and embed: only a :class:`~bertzoo.errors.BertzooError`
or a correct result may come out, never another exception or a silent NaN.

Shared by ``tests/core/test_fuzz.py`` (a few hundred cases, fixed seed) and ``benchmarks/fuzz.py``
(10,000 and more). Needs ``hypothesis`` (dev extra). Each ``check_*`` function takes one drawn case
and raises :class:`FuzzFailure` when the outcome is wrong; a BertzooError is a correct outcome.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hypothesis import strategies as st

from bertzoo.errors import BertzooError
from bertzoo.spec import ACTIVATIONS, ModelSpec


class FuzzFailure(AssertionError):
    """A case gave something other than a BertzooError or a correct result."""


# -- spec -----------------------------------------------------------------------------------------
SPEC_FIELDS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
    "initializer_range", "layer_norm_eps", "pad_token_id", "is_decoder", "add_cross_attention", "use_cache",
    "tie_word_embeddings", "classifier_dropout", "name",
)
# values a careless user or a hostile file may put anywhere
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.integers(-3, 70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["", "none", "gelu", "12", "1e3", "nan", "inf"]),
    st.text(max_size=8), st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.text(max_size=3), st.none(), max_size=1),
)
COMPONENT_NAMES = st.sampled_from([
    "eager", "sdpa", "flash", "auto", "bertzoo:eager", "bert", "mean", "cls", "max", "cls-tanh", "none",
    "sequence-classification", "masked-lm", "nope", "bertzoo:", ":x", "", "a:b:c",
])
COMPONENT_VALUE = st.one_of(
    COMPONENT_NAMES, ANY_VALUE,
    st.fixed_dictionaries({"name": COMPONENT_NAMES}, optional={"options": st.dictionaries(
        st.sampled_from(["num_labels", "window", "x", ""]), ANY_VALUE, max_size=2)}),
)
SPEC_DATA = st.fixed_dictionaries({}, optional={
    **{field: ANY_VALUE for field in SPEC_FIELDS},
    "components": st.one_of(ANY_VALUE, st.dictionaries(
        st.sampled_from(["attention", "embedding", "layer", "pooler", "head", "other"]), COMPONENT_VALUE, max_size=4)),
    "unknown_field": ANY_VALUE,
})


def check_spec(data: Mapping[str, Any]) -> ModelSpec | None:
    """Resolve ``data`` as ``bertzoo.build`` would (no allocation): a valid spec or a BertzooError."""
    from bertzoo.factory import resolve_spec

    try:
        spec = resolve_spec(data)
    except BertzooError:
        return None
    except Exception as exc:  # the property: nothing else may escape
        raise FuzzFailure(f"spec {data!r} raised {type(exc).__name__}: {exc}") from exc
    # what validation promised must hold on the result
    for name in ("hidden_size", "num_attention_heads", "vocab_size", "max_position_embeddings", "intermediate_size"):
        value = getattr(spec, name)
        if isinstance(value, bool) or value <= 0:
            raise FuzzFailure(f"spec {data!r} accepted {name}={value!r}")
    if spec.hidden_size % spec.num_attention_heads:
        raise FuzzFailure(f"spec {data!r} accepted hidden_size not divisible by heads")
    for name in ("layer_norm_eps", "initializer_range", "hidden_dropout_prob", "attention_probs_dropout_prob"):
        if not math.isfinite(getattr(spec, name)):
            raise FuzzFailure(f"spec {data!r} accepted {name}={getattr(spec, name)!r}")
    return spec


# -- build + forward ------------------------------------------------------------------------------
@dataclass
class ForwardCase:
    """A tiny architecture, a component choice and one forward call's inputs (some of them wrong)."""

    spec: dict[str, Any]
    input_ids: Any
    attention_mask: Any
    token_type_ids: Any
    packed: bool  # also run forward_packed on the real tokens


@st.composite
def forward_cases(draw: Callable[..., Any]) -> ForwardCase:
    heads = draw(st.integers(1, 3))
    spec = {
        "vocab_size": draw(st.integers(1, 40)),
        "hidden_size": heads * draw(st.integers(1, 6)),
        "num_attention_heads": heads,
        "num_hidden_layers": draw(st.integers(0, 2)),
        "intermediate_size": draw(st.integers(1, 16)),
        "max_position_embeddings": draw(st.integers(1, 12)),
        "type_vocab_size": draw(st.integers(1, 3)),
        "hidden_act": draw(st.sampled_from(ACTIVATIONS)),
        "pad_token_id": 0,
        "components": {"attention": draw(st.sampled_from(["eager", "sdpa", "flash", "auto"])),
                       "pooler": draw(st.sampled_from(["cls-tanh", "mean", "cls", "max", "none"]))},
    }
    batch = draw(st.integers(0, 3))
    length = draw(st.integers(0, 14))  # beyond max_position_embeddings on purpose
    ids_dtype = draw(st.sampled_from([torch.long, torch.long, torch.long, torch.int32, torch.float32]))
    ids = torch.tensor(draw(st.lists(st.lists(st.integers(-2, 45), min_size=length, max_size=length),
                                     min_size=batch, max_size=batch)), dtype=torch.long).reshape(batch, length)
    mask_kind = draw(st.sampled_from(["none", "right", "left", "holes", "zeros", "wrong-shape"]))
    mask: Any = None
    if mask_kind == "right":
        lengths = [draw(st.integers(0, length)) for _ in range(batch)]
        mask = (torch.arange(length)[None, :] < torch.tensor(lengths, dtype=torch.long)[:, None]).long()
    elif mask_kind == "left":
        lengths = [draw(st.integers(0, length)) for _ in range(batch)]
        mask = (torch.arange(length).flip(0)[None, :] < torch.tensor(lengths, dtype=torch.long)[:, None]).long()
    elif mask_kind == "holes":
        mask = torch.tensor(draw(st.lists(st.lists(st.integers(0, 1), min_size=length, max_size=length),
                                          min_size=batch, max_size=batch)), dtype=torch.long).reshape(batch, length)
    elif mask_kind == "zeros":
        mask = torch.zeros(batch, length, dtype=torch.long)
    elif mask_kind == "wrong-shape":
        mask = torch.ones(batch, length + 1, dtype=torch.long)
    types = None
    if draw(st.booleans()):
        types = torch.tensor(draw(st.lists(st.integers(-1, 3), min_size=batch * length, max_size=batch * length)),
                             dtype=torch.long).reshape(batch, length)
    return ForwardCase(spec, ids.to(ids_dtype), mask, types, packed=draw(st.booleans()))


def _valid_inputs(case: ForwardCase, spec: ModelSpec) -> bool:
    """Whether the inputs are ones HF's BertModel runs (then bertzoo must run them too)."""
    ids = case.input_ids
    if ids.dtype not in (torch.long, torch.int32) or ids.numel() == 0:
        return False
    if int(ids.min()) < 0 or int(ids.max()) >= spec.vocab_size or ids.shape[1] > spec.max_position_embeddings:
        return False
    if case.attention_mask is not None and case.attention_mask.shape != ids.shape:
        return False
    types = case.token_type_ids
    return types is None or (int(types.min()) >= 0 and int(types.max()) < spec.type_vocab_size)


def check_forward(case: ForwardCase) -> None:
    """Build the tiny model and run one forward (and a packed one): a BertzooError, or finite
    outputs of the right shapes. Invalid-for-HF inputs must be a BertzooError, not an IndexError."""
    import bertzoo

    torch.manual_seed(0)
    try:
        model = bertzoo.build(dict(case.spec)).eval()
    except BertzooError as exc:
        raise FuzzFailure(f"valid tiny spec {case.spec} refused: {exc}") from exc
    spec: ModelSpec = model.spec
    valid = _valid_inputs(case, spec)
    try:
        with torch.no_grad():
            out = model(case.input_ids, attention_mask=case.attention_mask, token_type_ids=case.token_type_ids)
    except BertzooError as exc:
        if valid and not _refusal_is_documented(case, exc):
            raise FuzzFailure(f"{case} refused valid input: {exc}") from exc
        return
    except Exception as exc:
        raise FuzzFailure(f"{case} raised {type(exc).__name__}: {exc}") from exc
    if not valid:
        raise FuzzFailure(f"{case}: input HF refuses ran without an error")
    batch, length = case.input_ids.shape
    hidden = out.last_hidden_state
    if tuple(hidden.shape) != (batch, length, spec.hidden_size):
        raise FuzzFailure(f"{case}: last_hidden_state has shape {tuple(hidden.shape)}")
    _finite(case, "last_hidden_state", hidden, case.attention_mask)
    if out.pooler_output is not None:
        if tuple(out.pooler_output.shape) != (batch, spec.hidden_size):
            raise FuzzFailure(f"{case}: pooler_output has shape {tuple(out.pooler_output.shape)}")
        _finite(case, "pooler_output", out.pooler_output, None)
    if case.packed:
        _check_packed(case, model, hidden)


def _refusal_is_documented(case: ForwardCase, exc: BertzooError) -> bool:
    # no built-in may refuse valid input (flash serves masks with holes too)
    return False


def _finite(case: ForwardCase, what: str, tensor: torch.Tensor, mask: Any) -> None:
    if mask is not None and tensor.dim() == 3:
        tensor = tensor[mask.bool()]  # padded positions may hold anything finite; NaN never
    if not bool(torch.isfinite(tensor).all()):
        raise FuzzFailure(f"{case}: {what} is not finite")


def _check_packed(case: ForwardCase, model: Any, padded: torch.Tensor) -> None:
    """forward_packed on the real tokens equals the padded forward at those tokens."""
    ids = case.input_ids.long()
    mask = case.attention_mask if case.attention_mask is not None else torch.ones_like(ids)
    rows = [ids[i][mask[i].bool()] for i in range(ids.shape[0])]
    if any(bool((m.bool().long().diff() < 0).any()) for m in mask) or case.token_type_ids is not None:
        return  # holes / token types: the padded call already covered them
    lengths = torch.tensor([0] + [len(r) for r in rows])
    cu = lengths.cumsum(0)
    try:
        with torch.no_grad():
            packed = model.forward_packed(torch.cat(rows), cu)
    except BertzooError:
        return
    except Exception as exc:
        raise FuzzFailure(f"{case}: forward_packed raised {type(exc).__name__}: {exc}") from exc
    expected = padded[mask.bool()]
    if packed.shape != expected.shape or not torch.allclose(packed, expected, atol=1e-4, rtol=1e-4):
        raise FuzzFailure(f"{case}: forward_packed differs from the padded forward")


# -- embed ----------------------------------------------------------------------------------------
TEXT = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=10),  # lone surrogates included
    st.sampled_from(["", " ", "\n", "[CLS]", "[MASK] [SEP]", "\x00", "\ud800", "é" * 200, "word " * 100]),
)
EMBED_CASES = st.tuples(st.one_of(TEXT, st.lists(TEXT, max_size=5)), st.sampled_from(["warn", "error", "silent"]),
                        st.one_of(st.none(), st.integers(-1, 64)), st.sampled_from([None, True, False]))


def check_embed(model: str | Path, case: tuple[Any, str, int | None, bool | None]) -> None:
    """``bertzoo.embed``: a BertzooError, or one finite vector per text (unit length when asked;
    equal texts, equal vectors)."""
    import bertzoo

    texts, truncate, batch_tokens, normalize = case
    try:
        vectors = bertzoo.embed(texts, model=str(model), truncate=truncate, batch_tokens=batch_tokens,
                                normalize=normalize, progress=False)
    except BertzooError:
        return
    except Exception as exc:
        raise FuzzFailure(f"embed{case!r} raised {type(exc).__name__}: {exc}") from exc
    many = [texts] if isinstance(texts, str) else list(texts)
    rows = vectors.reshape(len(many), -1) if isinstance(texts, str) else vectors
    if len(rows) != len(many):
        raise FuzzFailure(f"embed{case!r} gave {len(rows)} vectors for {len(many)} texts")
    if len(many) == 0:
        return
    t = torch.as_tensor(rows)
    if not bool(torch.isfinite(t).all()):
        raise FuzzFailure(f"embed{case!r} gave non-finite vectors")
    if normalize and not torch.allclose(t.norm(dim=-1), torch.ones(len(many)), atol=1e-4):
        raise FuzzFailure(f"embed{case!r} gave vectors that are not unit length")
    first: dict[str, int] = {}
    for i, text in enumerate(many):
        j = first.setdefault(text, i)
        if not torch.allclose(t[i], t[j], atol=1e-5):
            raise FuzzFailure(f"embed{case!r}: equal texts {i} and {j} gave different vectors")
