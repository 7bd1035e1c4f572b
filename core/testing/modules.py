"""Conformance of embeddings, layers and poolers: shapes, dtypes, determinism, gradients, keys.

Each component is built on a tiny spec (:data:`TINY_SPEC`) the way the factory builds it
(``target(spec, **dependencies, **options)``) and checked for:

- shapes and dtypes as its interface in :mod:`bertzoo.interfaces` states them (fp32 and bf16);
- determinism in eval mode (two calls, bitwise equal);
- gradients: every trainable parameter receives a finite gradient;
- state-dict keys: the same on every build, loadable strictly into a fresh build with identical
  outputs, and (layers) independent of the attention implementation;
- packed input: a layer registered with ``supports_packed=True`` gives, on ``(T, H)`` real tokens
  with a ``cu_seqlens`` mask and the variable-length ``bertzoo:flash``, what it gives padded with
  eager; a pooler called with ``cu_seqlens=`` gives what it gives padded.

A component that cannot be built gets one failing ``setup`` case; its other cases are skipped.

Shape legend: ``B`` batch, ``S`` sequence length, ``H`` hidden size, ``h`` heads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from bertzoo.errors import ComponentNotFoundError
from bertzoo.interfaces import AttentionMask, LayerOutput
from bertzoo.model.packing import packing_from_mask
from bertzoo.registry import ComponentRecord, Registry
from bertzoo.selection import layer_supports_packed
from bertzoo.spec import ModelSpec
from bertzoo.testing._base import TOLERANCES, Case, CaseFailed, compare, expect, guarded, hinted

# Small and odd-sized on purpose (37 catches code that assumes intermediate = 4 * hidden).
TINY_SPEC: dict[str, Any] = {
    "vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 37, "max_position_embeddings": 64, "type_vocab_size": 2, "pad_token_id": 0,
}
B, S = 3, 7
REFERENCE_ATTENTION = "bertzoo:eager"
OTHER_ATTENTION = "bertzoo:sdpa"  # used to check that layer keys do not depend on the attention
PACKED_ATTENTION = "bertzoo:flash"  # the variable-length op packed layers are checked with

HINTS: dict[str, str] = {
    "setup": "the component must import and build as target(spec, **dependencies, **options)",
    "builds": "expose word_embeddings as an nn.Embedding(vocab_size, hidden_size)",
    "shapes": "return the interface's shape in the input dtype (bertzoo.interfaces), finite at real positions",
    "inputs-embeds": "with inputs_embeds, skip the word lookup and treat them as word_embeddings(input_ids)",
    "position-offset": "default positions are arange(S) + past_key_values_length (+ position_offset)",
    "deterministic-eval": "no randomness in eval mode: use nn.Dropout, or F.dropout(..., training=self.training)",
    "gradients": "every parameter must take part in the forward (delete unused ones) and gradients must be finite",
    "state-dict-keys": "create the same submodules in the same order on every build; keep helper tensors in "
                       "non-persistent buffers (register_buffer(..., persistent=False))",
    "keys-independent-of-attention": "keep every projection in the layer, so its keys do not depend on the op",
    "attention-weights": "with output_attentions, return the op's weights as LayerOutput.self_attention",
    "cross-attention": "with a cross_attention op, build crossattention.* modules and use encoder_hidden_states",
    "packed": "a layer registered with supports_packed=True runs (T, H) hidden states: project without reshaping "
              "to (B, S), pass the mask (cu_seqlens) to the op; or drop supports_packed from its registration",
    "ignores-padding": "exclude padded positions using attention_mask (bertzoo.heads.pooling.pool does it)",
    "packed-input": "accept cu_seqlens= and pool each sequence of the (T, H) states "
                    "(bertzoo.heads.pooling.pool(hidden, mode, cu_seqlens=...) does it)",
}


def tiny_spec(**overrides: Any) -> ModelSpec:
    """The spec components are checked on: 2 layers, hidden 32, 4 heads, vocabulary 99."""
    return ModelSpec.model_validate({**TINY_SPEC, **overrides})


def _ids(seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, TINY_SPEC["vocab_size"], (B, S), generator=g)


def _padding() -> Tensor:
    """``(B, S)`` int64, 1 = real: full, 4 real tokens, 1 real token (right padding)."""
    lengths = torch.tensor([S, 4, 1])
    return (torch.arange(S)[None, :] < lengths[:, None]).long()


def _hidden(dtype: torch.dtype = torch.float32, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, S, TINY_SPEC["hidden_size"], generator=g).to(dtype)


def _seeded(builder: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return builder()


def _tensor(out: Any, what: str) -> Tensor:
    if isinstance(out, LayerOutput):
        out = out.hidden_states
    expect(isinstance(out, Tensor), f"{what} returned a {type(out).__name__}, not a Tensor")
    assert isinstance(out, Tensor)
    return out


def _check_gradients(module: nn.Module, loss: Tensor, extra: Mapping[str, Tensor] = {}) -> None:  # noqa: B006
    loss.backward()
    missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    expect(not missing, f"no gradient reached {', '.join(missing)}; every trainable parameter must take part")
    bad = [n for n, p in module.named_parameters() if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
    expect(not bad, f"non-finite gradients in {', '.join(bad)}")
    for name, tensor in extra.items():
        expect(tensor.grad is not None and bool(tensor.grad.abs().sum() > 0),
               f"no gradient flows back to the {name}")


def _check_keys(build: Callable[[], nn.Module], run: Callable[[nn.Module], Tensor]) -> None:
    first, second = _seeded(build, 0), _seeded(build, 1)
    keys1, keys2 = list(first.state_dict()), list(second.state_dict())
    expect(keys1 == keys2, f"state_dict keys differ between two builds: {keys1} vs {keys2}")
    try:
        second.load_state_dict(first.state_dict(), strict=True)
    except RuntimeError as exc:
        raise CaseFailed(f"its own state_dict does not load strictly into a fresh build: {exc}") from None
    first.eval()
    second.eval()
    with torch.no_grad():
        compare("output after loading the state_dict into a fresh build", run(second), run(first), atol=0.0,
                dims=("batch", "position", "hidden"))


def _eval_twice(module: nn.Module, run: Callable[[nn.Module], Tensor]) -> None:
    module.eval()
    with torch.no_grad():
        first, second = run(module), run(module)
    compare("second eval-mode call", second, first, atol=0.0, dims=("batch", "position", "hidden"))


# -- embeddings -----------------------------------------------------------------------------------------


def _embedding_cases(record: ComponentRecord, options: Mapping[str, Any]) -> list[tuple[str, Callable[[], None]]]:
    spec = tiny_spec()

    def build() -> nn.Module:
        return record.build(spec, **options)

    def run(module: nn.Module, **kw: Any) -> Tensor:
        return _tensor(module(input_ids=kw.pop("input_ids", _ids()), **kw), "the embedding")

    def builds() -> None:
        module = build()
        words = getattr(module, "word_embeddings", None)
        expect(isinstance(words, nn.Embedding),
               "the embedding must expose word_embeddings (an nn.Embedding) so an MLM decoder can be tied to it")
        assert isinstance(words, nn.Embedding)
        expect((words.num_embeddings, words.embedding_dim) == (spec.vocab_size, spec.hidden_size),
               f"word_embeddings is {words.num_embeddings}x{words.embedding_dim}, expected "
               f"{spec.vocab_size}x{spec.hidden_size} (vocab_size x hidden_size)")

    def shapes(dtype: torch.dtype) -> None:
        module = _seeded(build).to(dtype).eval()
        with torch.no_grad():
            out = run(module)
        expect(tuple(out.shape) == (B, S, spec.hidden_size), f"ids (B, S)=({B}, {S}) gave shape {tuple(out.shape)}, "
                                                              f"expected {(B, S, spec.hidden_size)}")
        expect(out.dtype == dtype, f"a {dtype} module gave {out.dtype} output")
        expect(bool(torch.isfinite(out).all()), "output has NaN or inf")

    def inputs_embeds() -> None:
        module = _seeded(build).eval()
        ids = _ids()
        with torch.no_grad():
            by_ids = run(module, input_ids=ids)
            words: Any = module.word_embeddings
            by_embeds = _tensor(module(inputs_embeds=words(ids)), "the embedding")
        compare("output for inputs_embeds = word_embeddings(ids)", by_embeds, by_ids,
                atol=TOLERANCES[torch.float32], dims=("batch", "position", "hidden"))

    def position_offset() -> None:
        module = _seeded(build).eval()
        with torch.no_grad():
            shifted = run(module, past_key_values_length=3)
            # embeddings whose positions start at an offset (RoBERTa's pad + 1) declare it as position_offset
            offset = int(getattr(module, "position_offset", 0))
            explicit = run(module, position_ids=torch.arange(3, 3 + S)[None, :] + offset)
        compare("output with past_key_values_length=3 vs position_ids=arange(3, 3+S) + position_offset", shifted, explicit,
                atol=TOLERANCES[torch.float32], dims=("batch", "position", "hidden"))

    def gradients() -> None:
        module = _seeded(build).train()
        _check_gradients(module, run(module).double().pow(2).mean())

    return [
        ("builds", builds),
        ("shapes[fp32]", partial(shapes, torch.float32)),
        ("shapes[bf16]", partial(shapes, torch.bfloat16)),
        ("inputs-embeds", inputs_embeds),
        ("position-offset", position_offset),
        ("deterministic-eval", lambda: _eval_twice(_seeded(build), run)),
        ("gradients", gradients),
        ("state-dict-keys", lambda: _check_keys(build, run)),
    ]


# -- layers ---------------------------------------------------------------------------------------------


def _attention_op(registry: Registry, name: str, spec: ModelSpec) -> Any:
    try:
        return registry.get("attention", name).build(spec)
    except ComponentNotFoundError as exc:
        raise CaseFailed(f"the reference attention {name} is not available ({exc}); enable bertzoo's "
                         "built-in plugins to run the conformance kit") from None


def _layer_cases(record: ComponentRecord, options: Mapping[str, Any], registry: Registry
                 ) -> list[tuple[str, Callable[[], None]]]:
    spec = tiny_spec()
    padding = _padding()

    def build(attention: str = REFERENCE_ATTENTION, spec: ModelSpec = spec, cross: bool = False) -> nn.Module:
        op = _attention_op(registry, attention, spec)
        cross_op = _attention_op(registry, attention, spec) if cross else None
        return record.build(spec, attention=op, cross_attention=cross_op, **options)

    def run(module: nn.Module, dtype: torch.dtype = torch.float32, **kw: Any) -> Tensor:
        mask = AttentionMask(key_padding=padding.bool())
        return _tensor(module(_hidden(dtype), mask=mask, **kw), "the layer")

    real = padding.bool()[:, :, None]  # (B, S, 1)

    def shapes(dtype: torch.dtype) -> None:
        module = _seeded(build).to(dtype).eval()
        with torch.no_grad():
            out = module(_hidden(dtype), mask=AttentionMask(key_padding=padding.bool()))
        expect(isinstance(out, LayerOutput), f"a layer returns a bertzoo.interfaces.LayerOutput, got {type(out).__name__}")
        hidden = out.hidden_states
        expect(tuple(hidden.shape) == (B, S, spec.hidden_size),
               f"(B, S, H) input gave shape {tuple(hidden.shape)}, expected {(B, S, spec.hidden_size)}")
        expect(hidden.dtype == dtype, f"a {dtype} layer gave {hidden.dtype} output")
        expect(bool(torch.isfinite(hidden[real.expand_as(hidden)]).all()), "output has NaN or inf at real positions")

    def keys_independent_of_attention() -> None:
        if not registry.is_component("attention", OTHER_ATTENTION):
            raise CaseFailed(f"{OTHER_ATTENTION} is not available; enable bertzoo's built-in plugins")
        reference = _seeded(build).eval()
        other = _seeded(lambda: build(OTHER_ATTENTION)).eval()
        keys_ref, keys_other = list(reference.state_dict()), list(other.state_dict())
        expect(keys_ref == keys_other, f"state_dict keys depend on the attention: {REFERENCE_ATTENTION} gives "
                                       f"{keys_ref}, {OTHER_ATTENTION} gives {keys_other}")
        other.load_state_dict(reference.state_dict(), strict=True)
        with torch.no_grad():
            compare(f"output with {OTHER_ATTENTION} vs {REFERENCE_ATTENTION} (same weights)", run(other), run(reference),
                    atol=1e-5, rows=real, dims=("batch", "position", "hidden"))

    def cross_attention() -> None:
        decoder = tiny_spec(is_decoder=True, add_cross_attention=True)
        module = _seeded(lambda: build(spec=decoder, cross=True)).eval()
        encoder = _hidden(seed=3)[:, :5]
        with torch.no_grad():
            out = module(_hidden(), mask=AttentionMask(key_padding=padding.bool(), causal=True),
                         encoder_hidden_states=encoder, encoder_mask=AttentionMask(key_padding=padding[:, :5].bool()))
        hidden = _tensor(out, "the layer")
        expect(tuple(hidden.shape) == (B, S, spec.hidden_size), f"cross-attention output has shape {tuple(hidden.shape)}")
        expect(bool(torch.isfinite(hidden[real.expand_as(hidden)]).all()), "cross-attention output has NaN or inf")
        without = {k for k in _seeded(build).state_dict()}
        added = sorted(set(module.state_dict()) - without)
        expect(bool(added), "a layer built with cross_attention has no extra weights for it")

    def packed() -> None:
        reference = _seeded(build).eval()
        module = _seeded(lambda: build(PACKED_ATTENTION)).eval()
        module.load_state_dict(reference.state_dict(), strict=True)
        packing = packing_from_mask(padding, B, S, torch.device("cpu"))
        assert packing is not None
        hidden = _hidden()
        with torch.no_grad():
            want = packing.pack(run(reference))  # (T, H) real rows of the padded eager run
            got = _tensor(module(packing.pack(hidden), mask=packing.attention_mask()), "the layer")
        compare(f"packed (T, H) output with {PACKED_ATTENTION} vs padded with {REFERENCE_ATTENTION}", got, want,
                atol=TOLERANCES[torch.float32], dims=("token", "hidden"))

    def attention_weights() -> None:
        module = _seeded(build).eval()
        with torch.no_grad():
            out = module(_hidden(), mask=AttentionMask(key_padding=padding.bool()), output_attentions=True)
        weights = out.self_attention if isinstance(out, LayerOutput) else None
        heads = spec.num_attention_heads
        expect(weights is not None and tuple(weights.shape) == (B, heads, S, S),
               f"output_attentions=True with {REFERENCE_ATTENTION} must give self_attention weights "
               f"{(B, heads, S, S)}, got {None if weights is None else tuple(weights.shape)}")

    def gradients() -> None:
        module = _seeded(build).train()
        hidden = _hidden().requires_grad_(True)
        out = _tensor(module(hidden, mask=AttentionMask(key_padding=padding.bool())), "the layer")
        _check_gradients(module, (out * real).double().pow(2).mean(), {"input hidden states": hidden})

    cases: list[tuple[str, Callable[[], None]]] = [
        ("shapes[fp32]", partial(shapes, torch.float32)),
        ("shapes[bf16]", partial(shapes, torch.bfloat16)),
        ("deterministic-eval", lambda: _eval_twice(_seeded(build), run)),
        ("gradients", gradients),
        ("state-dict-keys", lambda: _check_keys(build, run)),
        ("keys-independent-of-attention", keys_independent_of_attention),
        ("attention-weights", attention_weights),
    ]
    if record.capabilities.get("cross_attention", True):
        cases.append(("cross-attention", cross_attention))
    if layer_supports_packed(record):
        cases.append(("packed", packed))
    return cases


# -- poolers --------------------------------------------------------------------------------------------


def _pooler_cases(record: ComponentRecord, options: Mapping[str, Any]) -> list[tuple[str, Callable[[], None]]]:
    spec = tiny_spec()
    padding = _padding()

    def build() -> nn.Module:
        return record.build(spec, **options)

    def run(module: nn.Module, hidden: Tensor | None = None) -> Tensor:
        return _tensor(module(_hidden() if hidden is None else hidden, padding), "the pooler")

    def shapes(dtype: torch.dtype) -> None:
        module = _seeded(build).to(dtype).eval()
        with torch.no_grad():
            out = run(module, _hidden(dtype))
        expect(tuple(out.shape) == (B, spec.hidden_size),
               f"(B, S, H) input gave shape {tuple(out.shape)}, expected {(B, spec.hidden_size)}")
        expect(out.dtype == dtype, f"a {dtype} pooler gave {out.dtype} output")
        expect(bool(torch.isfinite(out).all()), "output has NaN or inf")

    def ignores_padding() -> None:
        module = _seeded(build).eval()
        hidden = _hidden()
        noisy = hidden.masked_fill(padding[:, :, None] == 0, 1e4)
        with torch.no_grad():
            compare("pooled output when the padded positions change", run(module, noisy), run(module, hidden),
                    atol=0.0, dims=("batch", "hidden"))

    def gradients() -> None:
        module = _seeded(build).train()
        hidden = _hidden().requires_grad_(True)
        _check_gradients(module, run(module, hidden).double().pow(2).mean(), {"input hidden states": hidden})

    def packed_input() -> None:
        module = _seeded(build).eval()
        packing = packing_from_mask(padding, B, S, torch.device("cpu"))
        assert packing is not None
        hidden = _hidden()
        with torch.no_grad():
            got = _tensor(module(packing.pack(hidden), cu_seqlens=packing.cu_seqlens), "the pooler")
            compare("pooled output of the packed (T, H) states with cu_seqlens", got, run(module, hidden),
                    atol=TOLERANCES[torch.float32], dims=("batch", "hidden"))

    def run_pooled(module: nn.Module) -> Tensor:
        return run(module)[:, None, :]  # (B, 1, H): compared with the (batch, position, hidden) names

    return [
        ("shapes[fp32]", partial(shapes, torch.float32)),
        ("shapes[bf16]", partial(shapes, torch.bfloat16)),
        ("ignores-padding", ignores_padding),
        ("packed-input", packed_input),
        ("deterministic-eval", lambda: _eval_twice(_seeded(build), run_pooled)),
        ("gradients", gradients),
        ("state-dict-keys", lambda: _check_keys(build, run_pooled)),
    ]


def module_cases(kind: str, record: ComponentRecord, options: Mapping[str, Any], registry: Registry) -> list[Case]:
    """The cases of an embedding, layer or pooler (one failing ``setup`` case when it cannot be built)."""
    spec = tiny_spec()
    if kind == "embedding":
        named = _embedding_cases(record, options)
    elif kind == "layer":
        named = _layer_cases(record, options, registry)
    elif kind == "pooler":
        named = _pooler_cases(record, options)
    else:  # pragma: no cover - the caller dispatches by kind
        raise ValueError(kind)

    def setup() -> None:
        if kind == "layer":
            record.build(spec, attention=_attention_op(registry, REFERENCE_ATTENTION, spec), cross_attention=None,
                         **options)
        else:
            record.build(spec, **options)

    cases = [Case(kind, record.full_name, name, body) for name, body in named]
    return guarded(kind, record.full_name, setup, hinted(cases, HINTS), HINTS["setup"])
