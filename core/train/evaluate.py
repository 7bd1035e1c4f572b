"""Evaluation during training: the mean loss and the objective's metrics on an evaluation table.

Every process evaluates the whole table (the same calls everywhere, so DDP's and FSDP's collectives
stay in step and the decision to stop early is the same on every process); only rank 0 reports it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertzoo.train import metrics as M
from bertzoo.train.batches import epoch_plan, to_device
from bertzoo.train.data import Encoded
from bertzoo.train.tasks import (
    Objective,
    Rerank,
    SentenceEmbedding,
    SequenceClassification,
    TokenClassification,
)


def evaluate(objective: Objective, step: nn.Module, data: Encoded, *, device: torch.device, packed: bool,
             pad_id: int, batch_size: int, autocast: Any) -> dict[str, float]:
    """``{"loss": ..., metric: value, ...}`` on ``data``, through the (wrapped) step module ``step``
    called with ``predict=True``; leaves it in eval mode."""
    step.eval()
    loss_total, count = 0.0, 0
    outputs: list[Tensor] = []
    plan = epoch_plan(data.lengths, epoch=0, seed=0, batch_size=batch_size, batch_tokens=None, shuffle=False)
    with torch.no_grad():
        for rows in plan:
            batch = to_device(objective.collate(data, rows, packed=packed, pad_id=pad_id), device)
            with autocast():
                loss, out = step(batch, predict=True)
            loss_total += float(loss)
            count += objective.count(data, rows)
            outputs.append(_per_row(objective, out, batch, data, rows, packed))
    result = {"loss": loss_total / max(count, 1)}
    result.update(_metrics(objective, outputs, data))
    return result


def _per_row(objective: Objective, out: Tensor, batch: dict[str, Any], data: Encoded, rows: list[int],
             packed: bool) -> Any:
    """What the metric needs from one batch, on the CPU."""
    out = out.detach().float().cpu()
    if isinstance(objective, TokenClassification):
        assert data.first is not None
        predicted = out.argmax(-1)
        inputs = batch["inputs"]
        tags = []
        for k, i in enumerate(rows):
            start = int(inputs.cu_seqlens[k]) if packed else 0
            row = predicted[start:] if packed else predicted[k]
            tags.append([int(row[p]) for p in data.first[i]])
        return tags
    return out


def _metrics(objective: Objective, outputs: list[Any], data: Encoded) -> dict[str, float]:
    if isinstance(objective, TokenClassification):
        assert data.words is not None and objective.labels is not None
        names = objective.labels.id2label
        predicted = [[names[t] for t in row] for batch in outputs for row in batch]
        gold = [[names[t] for t in row] for row in data.words]
        return M.entity_f1(gold, predicted)
    joined = torch.cat(outputs)
    if isinstance(objective, SentenceEmbedding):
        n = len(data)
        # each batch holds its anchors then its positives
        anchors, positives = [], []
        for batch in outputs:
            half = batch.shape[0] // 2
            anchors.append(batch[:half])
            positives.append(batch[half:])
        a = F.normalize(torch.cat(anchors), dim=-1)
        p = F.normalize(torch.cat(positives), dim=-1)
        return {"mrr@10": M.mrr_at_10(a @ p.T, torch.eye(n, dtype=torch.bool))}
    if isinstance(objective, Rerank):
        assert data.groups is not None
        return {"mrr@10": M.grouped_mrr_at_10(joined[:, 0].tolist(), data.labels, data.groups)}
    assert isinstance(objective, SequenceClassification) and objective.labels is not None
    labels = torch.tensor(data.labels)
    problem = objective.labels.problem_type
    if problem == "regression":
        return M.regression(joined, labels.float())
    if problem == "multi_label_classification":
        return M.multi_label(joined, labels.float())
    return M.classification(joined, labels)


__all__ = ["evaluate"]
