"""The built-in compute precisions (registry kind ``precision``, :mod:`bertzoo.plugins.precisions`).

Registered through the ``precisions`` entry point with devices and aliases; each satisfies the
Precision protocol; float32 changes nothing, bfloat16 and int8 swap only the encoder's Linear
layers and stay close to float32 on a tiny random model; int8 calibrates on the texts it
hands to ``calibrate``. ``bertzoo.quantize`` still exports the old names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import nn

import bertzoo
from bertzoo.discovery import get_registry
from bertzoo.errors import InputError
from bertzoo.interfaces import Precision
from bertzoo.plugins import precisions

TINY: dict[str, Any] = dict(
    vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=37, max_position_embeddings=64,
)


def tiny() -> Any:
    torch.manual_seed(0)
    return bertzoo.build(dict(TINY), head="sentence-embedding").eval()


def embed(model: Any) -> torch.Tensor:
    ids = torch.randint(1, 100, (3, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model(input_ids=ids).sentence_embedding  # type: ignore[no-any-return]


def linears(model: nn.Module, kind: type) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, kind)]


def test_registered_with_devices_and_aliases() -> None:
    reg = get_registry()
    assert reg.list_components("precision") == ["bertzoo:bfloat16", "bertzoo:float32", "bertzoo:int8"]
    meta = {r.name: r.metadata for r in reg.records("precision")}
    assert meta["bfloat16"]["aliases"] == ("bf16",) and meta["float32"]["aliases"] == ("fp32", "float")
    assert meta["int8"]["devices"] == ("cpu",) and meta["float32"]["devices"] == ()  # () = any device
    assert reg.get("precision", "int8").plugin == "precisions"
    for record in reg.records("precision"):
        assert record.description
        assert isinstance(record.build(), Precision)


def test_float32_changes_nothing() -> None:
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert precisions.Float32Precision().apply(model) is model
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_bfloat16_swaps_only_encoder_linears_and_stays_close() -> None:
    model = tiny()
    want = embed(model)
    encoder = [n for n in linears(model, nn.Linear) if n.startswith("bert.encoder.")]
    precisions.BFloat16Precision().apply(model)
    assert linears(model, precisions.BFloat16Linear) == encoder
    assert "bert.pooler.dense" in linears(model, nn.Linear)  # outside the encoder: float32
    got = embed(model)
    assert got.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(got, want).min() > 0.999


def test_bfloat16_needs_float32_weights() -> None:
    with pytest.raises(InputError, match="bf16 matmuls start from float32 weights"):
        precisions.BFloat16Precision().apply(tiny().double())


def test_int8_calibrates_on_its_texts_and_stays_close() -> None:
    if not precisions._int_mm_works():
        pytest.skip(f"torch {torch.__version__} has no CPU int8 matmul (torch._int_mm)")
    model = tiny()
    want = embed(model)
    seen: list[Sequence[str]] = []

    def calibrate(texts: Sequence[str]) -> None:
        seen.append(texts)
        ids = torch.randint(1, 100, (len(texts), 12), generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            model.bert(input_ids=ids)

    precisions.Int8Precision().apply(model, calibrate=calibrate)
    assert seen == [precisions.CALIBRATION_TEXTS]
    swapped = [model.get_submodule(n) for n in linears(model, precisions.Int8Linear)]
    assert len(swapped) == 6 * TINY["num_hidden_layers"] and all(m.smooth is not None for m in swapped)
    assert torch.nn.functional.cosine_similarity(embed(model), want).min() > 0.99

    plain = precisions.Int8Precision().apply(tiny())
    assert all(plain.get_submodule(n).smooth is None for n in linears(plain, precisions.Int8Linear))


def test_int8_needs_float32_weights() -> None:
    with pytest.raises(InputError, match="int8 quantisation starts from float32 weights"):
        precisions.Int8Precision().apply(tiny().double())


def test_old_module_still_exports_the_names() -> None:
    import bertzoo.quantize as old

    for name in old.__all__:
        assert getattr(old, name) is getattr(precisions, name)


@pytest.mark.parametrize("name", ["bfloat16", "int8"])
def test_a_precision_without_native_cpu_kernels_says_it_is_slower(name: str) -> None:
    """On a CPU without AVX512-BF16/AMX (bf16) or VNNI/AMX (int8) these precisions run slower than
    float32: applying one says so, and on a CPU that has the kernels it says nothing."""
    import warnings

    precision = {"bfloat16": precisions.BFloat16Precision(), "int8": precisions.Int8Precision()}[name]
    missing = precisions.missing_cpu_kernels(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        precision.apply(tiny())
    slow = [w for w in caught if issubclass(w.category, precisions.SlowPrecisionWarning)]
    if missing is None:
        assert not slow
    else:
        assert len(slow) == 1 and missing in str(slow[0].message) and "compute='float32'" in str(slow[0].message)
    assert precisions.missing_cpu_kernels("float32") is None
