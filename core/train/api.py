"""``bertzoo.train(...)``: fine-tune in Python with the keywords of ``bertzoo train``'s flags."""

from __future__ import annotations

from typing import Any

from bertzoo.train.config import TrainConfig


def train(model: str | None = None, *, head: str = "sequence-classification", train: str, output: str,
          **options: Any) -> Any:
    """Fine-tune ``model`` (default all-MiniLM-L6-v2) with ``head`` on the ``train`` file and write the
    final model to ``output`` (a folder transformers and bertzoo load).

    Every option of the CLI is a keyword here (``--learning-rate`` → ``learning_rate=``, ``--eval`` →
    ``eval=``); see :class:`bertzoo.train.config.TrainConfig` and docs/training.md. Returns a
    :class:`bertzoo.train.loop.TrainResult` (steps, history, last and best evaluation).

    Raises:
        InputError: unknown options, bad values, or data that does not fit the head.
        CheckpointError: the model cannot be read.
    """
    from bertzoo.train.loop import run

    config = TrainConfig.from_kwargs(model=model, head=head, train=str(train), output=str(output), **options)
    return run(config)


__all__ = ["train"]
