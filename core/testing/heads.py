"""Conformance of task heads: build, loss rule, output type, save/load round trip.

A head is built on a one-layer tiny spec through :func:`bertzoo.factory.build` (the way users
build it) with the eager attention, then:

- ``contract``: the trunk is at ``.bert``; ``uses_pooler`` is a bool; every ``classifier_keys``
  entry names a key (or key prefix) of the state dict;
- ``loss``: a forward with labels gives an output dataclass whose ``loss`` is a finite scalar
  that back-propagates into every head parameter; without labels ``loss`` is None;
- ``return-dict-false``: ``return_dict=False`` gives a tuple starting with the loss (HF's rule);
- ``deterministic-eval`` and ``save-load``: ``save_pretrained`` then ``from_pretrained`` gives a
  model with a clean load report and bitwise identical outputs.

Inputs: a head may define a classmethod ``conformance_inputs(spec, *, batch_size, seq_len,
generator) -> dict`` returning forward keyword arguments including its labels; bertzoo's own
heads are described in :data:`BUILTIN_INPUTS`; other heads get ``input_ids`` and
``attention_mask`` and, if ``forward`` takes ``labels``, labels inferred from the logits' shape.
Spec changes a head needs (e.g. ``is_decoder``) go in its registry metadata:
``conformance={"spec": {"is_decoder": True}, "options": {...}}``.
"""

from __future__ import annotations

import dataclasses
import inspect
import tempfile
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from bertzoo.registry import ComponentRecord, Registry
from bertzoo.testing._base import Case, CaseFailed, compare, conformance_metadata, expect, guarded, hinted
from bertzoo.testing.modules import TINY_SPEC

B, S, CHOICES = 3, 7, 2
Inputs = dict[str, Any]


def _ids(g: torch.Generator, *shape: int) -> Tensor:
    return torch.randint(1, TINY_SPEC["vocab_size"], shape, generator=g)


def _mask(*shape: int) -> Tensor:
    """Right padding: the last sequence keeps 4 of S tokens."""
    mask = torch.ones(*shape, dtype=torch.long)
    mask[..., -1, 4:] = 0
    return mask


def _token_labels(g: torch.Generator, mask: Tensor, high: int) -> Tensor:
    labels = torch.randint(0, high, mask.shape, generator=g)
    return labels.masked_fill(mask == 0, -100)  # -100 = ignored (CrossEntropyLoss's default)


def _classes(g: torch.Generator, high: int) -> Tensor:
    return torch.randint(0, high, (B,), generator=g)


def _base(g: torch.Generator) -> Inputs:
    return {"input_ids": _ids(g, B, S), "attention_mask": _mask(B, S)}


# bertzoo's own heads: name -> (spec overrides, forward inputs with labels)
BUILTIN_INPUTS: dict[str, tuple[dict[str, Any], Callable[[torch.Generator], Inputs]]] = {
    "pretraining": ({}, lambda g: (b := _base(g)) | {
        "labels": _token_labels(g, b["attention_mask"], TINY_SPEC["vocab_size"]), "next_sentence_label": _classes(g, 2)}),
    "masked-lm": ({}, lambda g: (b := _base(g)) | {
        "labels": _token_labels(g, b["attention_mask"], TINY_SPEC["vocab_size"])}),
    "causal-lm": ({"is_decoder": True}, lambda g: (b := _base(g)) | {
        "labels": _token_labels(g, b["attention_mask"], TINY_SPEC["vocab_size"])}),
    "next-sentence": ({}, lambda g: _base(g) | {"labels": _classes(g, 2)}),
    "sequence-classification": ({}, lambda g: _base(g) | {"labels": _classes(g, 2)}),
    "multiple-choice": ({}, lambda g: {
        "input_ids": _ids(g, B, CHOICES, S), "attention_mask": _mask(B, CHOICES, S), "labels": _classes(g, CHOICES)}),
    "token-classification": ({}, lambda g: (b := _base(g)) | {"labels": _token_labels(g, b["attention_mask"], 2)}),
    "question-answering": ({}, lambda g: _base(g) | {
        "start_positions": _classes(g, 4), "end_positions": _classes(g, 4)}),
    "sentence-embedding": ({}, _base),
}
LABEL_NAMES = ("labels", "next_sentence_label", "start_positions", "end_positions")


class _Subject:
    def __init__(self, record: ComponentRecord, options: Mapping[str, Any], registry: Registry) -> None:
        self.record = record
        self.registry = registry
        meta = conformance_metadata(record.metadata)
        self.options = {**meta.get("options", {}), **options}
        builtin = BUILTIN_INPUTS.get(record.name) if record.namespace == "bertzoo" else None
        self.spec_overrides = {**(builtin[0] if builtin else {}), **meta.get("spec", {})}
        self.builtin_inputs = builtin[1] if builtin else None
        self.name = record.full_name

    def spec_data(self) -> dict[str, Any]:
        return {**TINY_SPEC, "num_hidden_layers": 1, **self.spec_overrides,
                "components": {"attention": "eager", "head": {"name": self.name, "options": self.options}}}

    def build(self, seed: int = 0) -> nn.Module:
        from bertzoo.factory import build

        torch.manual_seed(seed)
        return build(self.spec_data(), registry=self.registry)

    def inputs(self, model: nn.Module, *, labels: bool = True) -> Inputs:
        g = torch.Generator().manual_seed(0)
        cls = type(model)
        hook = getattr(cls, "conformance_inputs", None)
        if callable(hook):
            data = dict(hook(model.spec, batch_size=B, seq_len=S, generator=g))
        elif self.builtin_inputs is not None:
            data = self.builtin_inputs(g)
        else:
            data = _base(g)
            if "labels" in inspect.signature(model.forward).parameters:
                data["labels"] = self._inferred_labels(model, data, g)
        if not labels:
            data = {k: v for k, v in data.items() if k not in LABEL_NAMES}
        return data

    def _inferred_labels(self, model: nn.Module, data: Inputs, g: torch.Generator) -> Tensor:
        model.eval()
        with torch.no_grad():
            out = model(**data)
        logits = getattr(out, "logits", None)
        if isinstance(logits, Tensor) and logits.dim() == 2:
            if logits.shape[-1] == 1:
                return torch.randn(B, generator=g)
            return _classes(g, logits.shape[-1])
        if isinstance(logits, Tensor) and logits.dim() == 3:
            return _token_labels(g, data["attention_mask"], logits.shape[-1])
        raise CaseFailed(
            f"cannot infer labels for {self.name}: its output has no 2-D or 3-D `logits`; give the head a "
            "classmethod conformance_inputs(spec, *, batch_size, seq_len, generator) returning forward "
            "arguments with labels"
        )

    def takes_labels(self, model: nn.Module) -> bool:
        return any(k in LABEL_NAMES for k in self.inputs(model))


def _tensors(out: Any) -> dict[str, Tensor]:
    """The tensor fields of an output dataclass, or the items of a tuple, by name."""
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return {f.name: v for f in dataclasses.fields(out) if isinstance(v := getattr(out, f.name), Tensor)}
    if isinstance(out, tuple):
        return {str(i): v for i, v in enumerate(out) if isinstance(v, Tensor)}
    raise CaseFailed(f"the forward returned a {type(out).__name__}; a head returns an output dataclass "
                     "(see bertzoo.model.ModelOutput) or, with return_dict=False, a tuple")


def _contract(s: _Subject) -> None:
    model = s.build()
    expect(isinstance(getattr(model, "bert", None), nn.Module),
           f"the head must keep the trunk at .bert (HF's base_model_prefix), got {type(getattr(model, 'bert', None)).__name__}")
    expect(isinstance(getattr(type(model), "uses_pooler", None), bool), "the head class must set uses_pooler: bool")
    keys = getattr(type(model), "classifier_keys", None)
    expect(isinstance(keys, tuple), "the head class must set classifier_keys: a tuple of key names or prefixes")
    state = list(model.state_dict())
    unknown = [k for k in keys or () if not any(n == k or n.startswith(k + ".") for n in state)]
    expect(not unknown, f"classifier_keys {unknown} match no state_dict key (keys: {[n for n in state if not n.startswith('bert.')]})")
    has_pooler = getattr(model.bert, "pooler", None) is not None
    uses_pooler = getattr(type(model), "uses_pooler", None)
    expect(has_pooler == uses_pooler,
           f"uses_pooler={uses_pooler} but the built trunk {'has' if has_pooler else 'has no'} pooler")


def _loss(s: _Subject) -> None:
    model = s.build().train()
    if not s.takes_labels(model):
        out = model(**s.inputs(model))
        expect(getattr(out, "loss", None) is None, "the head takes no labels but returned a loss")
        _tensors(out)
        return
    out = model(**s.inputs(model))
    expect(dataclasses.is_dataclass(out), f"the forward returned a {type(out).__name__}, not an output dataclass")
    loss = getattr(out, "loss", None)
    expect(isinstance(loss, Tensor), f"{type(out).__name__}.loss is {type(loss).__name__} although labels were given")
    assert isinstance(loss, Tensor)
    expect(loss.dim() == 0, f"the loss has shape {tuple(loss.shape)}; it must be a scalar")
    expect(bool(torch.isfinite(loss.detach())), f"the loss is {loss.item() if loss.numel() == 1 else loss}")
    expect(loss.requires_grad, "the loss does not require grad: it is detached from the parameters")
    loss.backward()
    head_params = [(n, p) for n, p in model.named_parameters() if not n.startswith("bert.")]
    missing = [n for n, p in head_params if p.requires_grad and p.grad is None]
    expect(not missing, f"no gradient from the loss reached {', '.join(missing)}")
    trunk = [n for n, p in model.named_parameters() if n.startswith("bert.encoder") and p.grad is not None]
    expect(bool(trunk), "no gradient from the loss reached the trunk's encoder")
    model.zero_grad()
    out = model(**s.inputs(model, labels=False))
    expect(getattr(out, "loss", None) is None, "without labels the loss must be None")


def _return_dict_false(s: _Subject) -> None:
    model = s.build().eval()
    inputs = s.inputs(model)
    with torch.no_grad():
        as_dict = model(**inputs)
        as_tuple = model(**inputs, return_dict=False)
    expect(isinstance(as_tuple, tuple), f"return_dict=False returned a {type(as_tuple).__name__}, not a tuple")
    loss = getattr(as_dict, "loss", None)
    if isinstance(loss, Tensor):
        expect(isinstance(as_tuple[0], Tensor) and torch.equal(as_tuple[0], loss),
               "with labels and return_dict=False the tuple must start with the loss (HF's rule)")


def _deterministic(s: _Subject) -> None:
    model = s.build().eval()
    inputs = s.inputs(model)
    with torch.no_grad():
        first, second = _tensors(model(**inputs)), _tensors(model(**inputs))
    for name, value in first.items():
        compare(f"output field {name!r} of a second eval-mode call", second[name], value, atol=0.0, dims=())


def _save_load(s: _Subject) -> None:
    from bertzoo.pretrained import from_pretrained, save_pretrained

    model = s.build().eval()
    inputs = s.inputs(model)
    with tempfile.TemporaryDirectory(prefix="bertzoo-conformance-") as folder:
        save_pretrained(model, folder, registry=s.registry)
        loaded = from_pretrained(folder, head=s.name, attention="eager", registry=s.registry)
    report = loaded.load_report
    expect(not (report.missing or report.unexpected or report.mismatched),
           f"the round trip did not load cleanly: {report.summary()}")
    expect(type(loaded) is type(model), f"from_pretrained built a {type(loaded).__name__}, saved a {type(model).__name__}")
    with torch.no_grad():
        before, after = _tensors(model(**inputs)), _tensors(loaded(**inputs))
    expect(set(before) == set(after), f"output fields differ after the round trip: {sorted(before)} vs {sorted(after)}")
    for name, value in before.items():
        compare(f"output field {name!r} after save_pretrained + from_pretrained", after[name], value, atol=0.0, dims=())


HINTS: dict[str, str] = {
    "setup": "the head must build as target(bert, spec, **options); spec changes it needs go in its registration: "
             "conformance={'spec': {...}, 'options': {...}}",
    "contract": "keep the trunk at .bert and set the class attributes uses_pooler: bool and classifier_keys: tuple",
    "loss": "compute the loss only when labels are given, as a scalar connected to every head parameter",
    "return-dict-false": "with return_dict=False return out.to_tuple() (the loss first when there is one)",
    "deterministic-eval": "no randomness in eval mode: use nn.Dropout, or F.dropout(..., training=self.training)",
    "save-load": "name every head module by its HF checkpoint key and keep helper tensors in non-persistent "
                 "buffers, so save_pretrained + from_pretrained restores it exactly",
}


def head_cases(record: ComponentRecord, options: Mapping[str, Any], registry: Registry) -> list[Case]:
    """The cases of a task head (one failing ``setup`` case when it cannot be built)."""
    s = _Subject(record, options, registry)
    named: list[tuple[str, Callable[[], None]]] = [
        ("contract", partial(_contract, s)),
        ("loss", partial(_loss, s)),
        ("deterministic-eval", partial(_deterministic, s)),
        ("save-load", partial(_save_load, s)),
    ]
    try:
        forward = getattr(record.load(), "forward", None)
    except Exception:  # an import error: the contract case reports it
        forward = None
    if forward is not None and "return_dict" in inspect.signature(forward).parameters:
        named.insert(2, ("return-dict-false", partial(_return_dict_false, s)))
    cases = [Case("head", record.full_name, name, body) for name, body in named]
    return guarded("head", record.full_name, s.build, hinted(cases, HINTS), HINTS["setup"])
