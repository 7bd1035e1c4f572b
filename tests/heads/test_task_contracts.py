"""The main-job task contracts of the built-in heads (``bertzoo.interfaces``).

Each head registered with a ``task`` implements that task's protocol; its contract method gives
what its ``forward`` gives (same modules, same arithmetic) from padded states, and the same
values from the real tokens packed with ``cu_seqlens``. Bad states are InputErrors.
Tiny random models, eval mode (dropout off), fp32.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import bertzoo
from bertzoo.discovery import get_registry
from bertzoo.errors import InputError
from bertzoo.interfaces import (
    TASK_DEFAULT_HEADS,
    AnswerTask,
    ClassifyTask,
    EmbedTask,
    FillMaskTask,
    TaskStates,
    TokenClassifyTask,
)

TINY: dict[str, Any] = dict(
    vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=37, max_position_embeddings=64,
)
PROTOCOLS: dict[str, type] = {
    "embed": EmbedTask, "classify": ClassifyTask, "rerank": ClassifyTask, "fill-mask": FillMaskTask,
    "token-classify": TokenClassifyTask, "answer": AnswerTask,
}
TASKS: dict[str, tuple[str, ...]] = {
    "pretraining": ("fill-mask",), "masked-lm": ("fill-mask",), "sequence-classification": ("classify", "rerank"),
    "token-classification": ("token-classify",), "question-answering": ("answer",), "sentence-embedding": ("embed",),
}


def tasks_of(head: str) -> tuple[str, ...]:
    task = get_registry().get("head", head).metadata.get("task", ())
    return (task,) if isinstance(task, str) else tuple(task)


def model(head: str, **options: Any) -> Any:
    torch.manual_seed(0)
    built = bertzoo.build(dict(TINY), head=head, **options).eval()
    with torch.no_grad():
        for p in built.parameters():  # away from the trivial init of biases and LayerNorms
            p.add_(0.05 * torch.randn_like(p))
    return built


def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, TINY["vocab_size"], (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 7:] = 0
    ids[0, 2] = ids[1, 4] = ids[2, 1] = 4  # "mask tokens" for fill-mask
    ids[mask == 0] = 0
    return {"input_ids": ids, "attention_mask": mask}


def states(m: Any, x: dict[str, torch.Tensor], packed: bool) -> TaskStates:
    hidden = m.bert(**x, return_dict=True).last_hidden_state  # (B, S, H)
    if not packed:
        return TaskStates(hidden=hidden, input_ids=x["input_ids"], attention_mask=x["attention_mask"])
    real = x["attention_mask"].bool()
    cu = torch.zeros(4, dtype=torch.int32)
    cu[1:] = real.sum(1).cumsum(0)
    return TaskStates(hidden=hidden[real], input_ids=x["input_ids"][real], cu_seqlens=cu,
                      max_seqlen=int(real.sum(1).max()))


@pytest.mark.parametrize("head", sorted(TASKS))
def test_registration_names_the_tasks_and_the_head_implements_them(head: str) -> None:
    assert tasks_of(head) == TASKS[head]
    built = model(head)
    for task in TASKS[head]:
        assert isinstance(built, PROTOCOLS[task]), f"{head} registers task {task!r} but lacks its contract"


def test_every_task_default_head_serves_its_task() -> None:
    for task, head in TASK_DEFAULT_HEADS.items():
        assert task in tasks_of(head)


def test_heads_without_a_task_register_none() -> None:
    for head in ("causal-lm", "next-sentence", "multiple-choice"):
        assert tasks_of(head) == ()


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("pooling", ["mean", "cls", "max", "mean_sqrt_len_tokens"])
def test_embed_states_is_the_forward_before_normalisation(pooling: str, packed: bool) -> None:
    m, x = model("sentence-embedding", pooling=pooling, normalize=True), batch()
    with torch.no_grad():
        want = m(**x).sentence_embedding
        got = m.embed_states(states(m, x, packed))
    assert got.dtype == torch.float32 and got.shape == (3, TINY["hidden_size"])
    assert (m.embedding_dimension, m.embedding_normalize) == (TINY["hidden_size"], True)
    torch.testing.assert_close(torch.nn.functional.normalize(got, dim=-1), want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_classify_states_is_the_forward(packed: bool) -> None:
    m, x = model("sequence-classification", num_labels=3, problem_type="multi_label_classification"), batch()
    with torch.no_grad():
        want = m(**x).logits
        got = m.classify_states(states(m, x, packed))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert m.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    assert m.problem_type == "multi_label_classification"


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("head", ["masked-lm", "pretraining"])
def test_mask_logits_are_the_forward_at_mask_positions(head: str, packed: bool) -> None:
    m, x = model(head), batch()
    s = states(m, x, packed)
    positions = s.input_ids == 4
    with torch.no_grad():
        out = m(**x)
        want = (out.logits if head == "masked-lm" else out.prediction_logits)[x["input_ids"] == 4]  # (M, V)
        got = m.mask_logits(s, positions)
    assert got.shape == (3, TINY["vocab_size"])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_token_logits_are_the_forward(packed: bool) -> None:
    m, x = model("token-classification", num_labels=5), batch()
    with torch.no_grad():
        want = m(**x).logits
        got = m.token_logits(states(m, x, packed))
    real = x["attention_mask"].bool()
    torch.testing.assert_close(got if packed else got[real], want[real], atol=1e-6, rtol=0)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_span_logits_are_the_forward(packed: bool) -> None:
    m, x = model("question-answering"), batch()
    with torch.no_grad():
        out = m(**x)
        start, end = m.span_logits(states(m, x, packed))
    real = x["attention_mask"].bool()
    pick = (lambda t: t) if packed else (lambda t: t[real])
    torch.testing.assert_close(pick(start), out.start_logits[real], atol=1e-6, rtol=0)
    torch.testing.assert_close(pick(end), out.end_logits[real], atol=1e-6, rtol=0)


def test_bad_states_are_input_errors() -> None:
    m, x = model("masked-lm"), batch()
    good = states(m, x, packed=False)
    with pytest.raises(InputError, match="task methods take a bertzoo.interfaces.TaskStates, got Tensor"):
        m.mask_logits(good.hidden, good.input_ids == 4)
    narrow = TaskStates(hidden=good.hidden[..., :16], input_ids=good.input_ids, attention_mask=x["attention_mask"])
    with pytest.raises(InputError, match=r"hidden states have shape \(3, 9, 16\).*hidden = 32"):
        m.mask_logits(narrow, good.input_ids == 4)
    flat = TaskStates(hidden=good.hidden.flatten(0, 1), input_ids=good.input_ids.flatten())
    with pytest.raises(InputError, match="packed ones need cu_seqlens"):
        m.mask_logits(flat, flat.input_ids == 4)
    with pytest.raises(InputError, match="positions must be a bool tensor"):
        m.mask_logits(good, (good.input_ids == 4).long())
    with pytest.raises(InputError, match=r"positions has shape \(3, 8\)"):
        m.mask_logits(good, (good.input_ids == 4)[:, :8])
    bad_mask = TaskStates(hidden=good.hidden, input_ids=good.input_ids, attention_mask=x["attention_mask"][:, :4])
    with pytest.raises(InputError, match=r"attention_mask has shape \(3, 4\)"):
        model("token-classification").token_logits(bad_mask)


def test_a_pooler_output_of_the_wrong_shape_is_an_input_error() -> None:
    m, x = model("sequence-classification"), batch()
    s = states(m, x, packed=False)

    class Flat(torch.nn.Module):
        def forward(self, hidden: torch.Tensor, attention_mask: Any = None, **_: Any) -> torch.Tensor:
            return hidden[:, 0, :8]

    m.bert.pooler = Flat()
    with pytest.raises(InputError, match=r"pooler returned \(3, 8\), expected \(3, 32\)"):
        m.classify_states(s)
