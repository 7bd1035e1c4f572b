"""``question-answering`` (BertForQuestionAnswering): extractive span prediction.

``qa_outputs: Linear(H, 2)`` on every token (no pooler, no dropout) gives start and end logits.
The loss is HF's: positions are clamped to ``[0, S]`` and ``S`` is the ignored index, so a span
outside the (truncated) input does not count; total = (start loss + end loss) / 2, and only
when both positions are given.

Shape legend: ``B`` batch, ``S`` sequence length, ``H`` hidden size.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from bertzoo.heads.base import check_class_labels, check_states, finish
from bertzoo.heads.classification import LabelledHead
from bertzoo.heads.options import QuestionAnsweringOptions
from bertzoo.heads.outputs import QuestionAnsweringModelOutput
from bertzoo.interfaces import TaskStates


class BertForQuestionAnswering(LabelledHead):
    """Start / end logits per token (HF ``BertForQuestionAnswering``); ``num_labels`` must be 2."""

    uses_pooler: ClassVar[bool] = False
    per_token_outputs: ClassVar[bool] = True
    classifier_keys: ClassVar[tuple[str, ...]] = ("qa_outputs.weight", "qa_outputs.bias")
    options_model = QuestionAnsweringOptions

    def __init__(self, bert: nn.Module, spec: Any, **options: Any) -> None:
        super().__init__(bert, spec, **options)
        self.qa_outputs = nn.Linear(spec.hidden_size, self.num_labels)

    # -- task "answer" (bertzoo.interfaces.AnswerTask) -------------------------------------------------
    def span_logits(self, states: TaskStates) -> tuple[Tensor, Tensor]:
        """Start and end logits per token: ``(T,)`` each from packed states, ``(B, S)`` from padded ones.

        Raises:
            InputError: states that do not fit the model.
        """
        hidden = check_states(states, "question-answering", self.spec.hidden_size)
        start, end = self.qa_outputs(hidden).unbind(dim=-1)
        return start.contiguous(), end.contiguous()

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, position_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, start_positions: Tensor | None = None,
                end_positions: Tensor | None = None, return_dict: bool | None = None, **kwargs: Any
    ) -> QuestionAnsweringModelOutput | tuple[Tensor, ...]:
        """Args: question + context ids (B, S); ``start_positions`` / ``end_positions`` (B,) or (B, 1)
        token indices of the answer span. Returns ``start_logits``, ``end_logits`` (B, S).

        Raises:
            InputError: positions of the wrong shape or dtype.
        """
        out = self.run_bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            position_ids=position_ids, inputs_embeds=inputs_embeds, **kwargs,
        )
        logits = self.qa_outputs(out.last_hidden_state)  # (B, S, 2)
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            batch, seq = start_logits.shape
            start = check_class_labels(start_positions, "start_positions", (batch,), "question-answering").view(-1)
            end = check_class_labels(end_positions, "end_positions", (batch,), "question-answering").view(-1)
            # spans outside the input (e.g. cut by truncation) are clamped to S, which is ignored
            start, end = start.clamp(0, seq), end.clamp(0, seq)
            loss = (
                F.cross_entropy(start_logits, start, ignore_index=seq)
                + F.cross_entropy(end_logits, end, ignore_index=seq)
            ) / 2
        return finish(
            QuestionAnsweringModelOutput(
                loss=loss, start_logits=start_logits, end_logits=end_logits,
                hidden_states=out.hidden_states, attentions=out.attentions,
            ),
            return_dict,
        )
