"""Fuzz suite (issue 19 item 13): spec, build + forward and embed give a BertzooError or a correct
result, never another exception or a silent NaN. Fixed seed; ``benchmarks/fuzz.py`` runs 10,000+."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the fuzz suite needs hypothesis (dev extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402

import bertzoo  # noqa: E402
from bertzoo.errors import InputError  # noqa: E402
from bertzoo.testing.fuzz import (  # noqa: E402
    EMBED_CASES,
    SPEC_DATA,
    ForwardCase,
    check_embed,
    check_forward,
    check_spec,
    forward_cases,
)

# derandomize: the same cases on every run and machine, so a failure reproduces
settings.register_profile("bertzoo-ci", derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
CI = settings.get_profile("bertzoo-ci")


@settings(CI, max_examples=300)
@given(SPEC_DATA)
def test_spec_gives_a_spec_or_a_bertzoo_error(data: dict[str, Any]) -> None:
    check_spec(data)


@settings(CI, max_examples=150)
@given(forward_cases())
def test_forward_gives_finite_outputs_or_a_bertzoo_error(case: ForwardCase) -> None:
    check_forward(case)


@pytest.mark.filterwarnings("ignore::bertzoo.inference.truncation.TruncationWarning")
@settings(CI, max_examples=60)
@given(case=EMBED_CASES)
def test_embed_gives_unit_vectors_or_a_bertzoo_error(tiny_bert: Path, case: Any) -> None:
    check_embed(tiny_bert, case)


def test_an_empty_batch_is_an_input_error() -> None:
    # found by the fuzz suite: (0, S) input_ids reached torch's min() and raised a RuntimeError
    import torch

    model = bertzoo.build({"vocab_size": 8, "hidden_size": 4, "num_attention_heads": 1, "num_hidden_layers": 1,
                           "intermediate_size": 4, "max_position_embeddings": 8})
    with pytest.raises(InputError, match="batch size 0"):
        model(torch.zeros(0, 3, dtype=torch.long))


def test_packed_input_without_tokens_is_an_input_error() -> None:
    # found by the fuzz suite: forward_packed on T=0 tokens raised torch's RuntimeError from min()
    import torch

    model = bertzoo.build({"vocab_size": 8, "hidden_size": 4, "num_attention_heads": 1, "num_hidden_layers": 1,
                           "intermediate_size": 4, "max_position_embeddings": 8}, attention="flash")
    with pytest.raises(InputError, match="T=0"):
        model.forward_packed(torch.zeros(0, dtype=torch.long), torch.tensor([0, 0]))
