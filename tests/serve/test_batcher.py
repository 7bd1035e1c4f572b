"""The embedding batcher in-process: splitting and merging fitted texts, and a worker fed from many
threads at once giving ``Pipeline.embed``'s vectors (windows included) on a tiny model."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from bertzoo.inference.pipeline import Pipeline
from bertzoo.serve.batcher import ModelWorker, merge_fitted, piece_tokens, split_fitted
from bertzoo.serve.metrics import Metrics

TEXTS = [f"text {i} " + "word " * (i * 7 % 45) for i in range(40)]  # some over the tiny model's 32 tokens


@pytest.fixture(scope="module")
def pipe(tiny_bert: Path) -> Pipeline:
    return Pipeline(tiny_bert)


@pytest.mark.parametrize("policy", ["silent", "chunk"])
def test_split_then_merge_gives_back_the_same_texts(pipe: Pipeline, policy: str) -> None:
    fitted = pipe.encode_for_embedding(TEXTS, policy)
    pieces = split_fitted(fitted, 100)
    assert len(pieces) > 3 and sum(len(p) for p in pieces) == len(TEXTS)
    assert all(piece_tokens(p) <= 100 or len(p) == 1 for p in pieces)
    merged = merge_fitted(pieces)
    assert merged.sequences.ids == fitted.sequences.ids
    np.testing.assert_array_equal(merged.tokens, fitted.tokens)
    np.testing.assert_array_equal(merged.truncated, fitted.truncated)
    if policy == "chunk":
        assert fitted.owner is not None and len(fitted.sequences) > len(TEXTS)  # some texts became windows
        np.testing.assert_array_equal(merged.owner, fitted.owner)


def test_worker_serves_concurrent_submits_like_offline_embed(pipe: Pipeline) -> None:
    metrics = Metrics()
    worker = ModelWorker("tiny", pipe, batch_tokens=64, max_wait_s=0.005, metrics=metrics)
    worker.start()
    try:
        def submit(i: int) -> torch.Tensor:
            policy = "chunk" if i % 2 else "silent"
            futures = worker.submit_embed(pipe.encode_for_embedding(TEXTS[i:i + 3], policy))
            return torch.cat([f.result(60) for f in futures])

        starts = list(range(0, len(TEXTS) - 2, 3))
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(submit, starts))
        call = worker.submit_call(lambda: "ran on the worker")
        assert call.result(60) == "ran on the worker"
    finally:
        worker.close(60)
    offline = {p: pipe.embed(TEXTS, normalize=False, truncate=p, output="torch") for p in ("silent", "chunk")}
    for i, rows in zip(starts, got, strict=True):  # a text's vector does not depend on its batch
        torch.testing.assert_close(rows, offline["chunk" if i % 2 else "silent"][i:i + 3], atol=1e-5, rtol=1e-4)
    assert "bertzoo_queue_depth{model=\"tiny\"} 0" in metrics.render()
    with pytest.raises(RuntimeError, match="shutting down"):
        worker.submit_call(lambda: None)


def test_worker_keeps_a_prompt_out_of_pooling_like_offline_embed(tiny_bert: Path, tmp_path: Path,
                                                                  prompted_folder: Callable[..., Path]) -> None:
    """A folder whose default prompt is not pooled (``include_prompt: false``): the batcher's split and
    merge must carry the prompt's token count, or the served vectors would pool the prompt."""
    folder = prompted_folder(tiny_bert, tmp_path / "prompted", {"query": "query: represent this sentence "},
                             normalize=False, include_prompt=False)
    prompted = Pipeline(folder)
    fitted = prompted.encode_for_embedding(TEXTS[:9], "silent")
    assert getattr(fitted, "prompt_tokens", 0) > 0
    assert getattr(merge_fitted(split_fitted(fitted, 40)), "prompt_tokens", 0) == fitted.prompt_tokens  # type: ignore[attr-defined]
    worker = ModelWorker("prompted", prompted, batch_tokens=64, max_wait_s=0.005, metrics=Metrics())
    worker.start()
    try:
        got = torch.cat([f.result(60) for f in worker.submit_embed(fitted)])
    finally:
        worker.close(60)
    offline = prompted.embed(TEXTS[:9], normalize=False, truncate="silent", output="torch")
    pooled_prompt = prompted.embed(TEXTS[:9], normalize=False, truncate="silent", output="torch", prompt="")
    torch.testing.assert_close(got, offline, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(offline, pooled_prompt, atol=1e-3)
