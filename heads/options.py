"""Options models of the task heads (pydantic, ``extra="forbid"``).

Kept apart from :mod:`bertzoo.heads.register` so that listing heads does not import pydantic:
the registration names these models as ``"module:attr"`` strings, loaded when a spec is validated.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ProblemType = Literal["regression", "single_label_classification", "multi_label_classification"]
PoolingMode = Literal["mean", "cls", "max", "mean_sqrt_len_tokens"]


class LabelOptions(BaseModel):
    """Labels of a classifier: ``num_labels`` and the ``id2label`` / ``label2id`` maps (HF's names).

    Any one of them decides the others: ``num_labels=3`` names the labels ``LABEL_0..2``;
    ``id2label`` alone sets ``num_labels``. Given together, they must agree.
    """

    model_config = ConfigDict(extra="forbid")

    num_labels: int | None = Field(None, ge=1, description="size of the classifier output (default 2)")
    id2label: dict[int, str] | None = Field(None, description="label name of each output index")
    label2id: dict[str, int] | None = Field(None, description="output index of each label name")

    @model_validator(mode="after")
    def _consistent(self) -> LabelOptions:
        if self.id2label is None and self.label2id is not None:
            self.id2label = {i: name for name, i in self.label2id.items()}
        if self.id2label is not None:
            if sorted(self.id2label) != list(range(len(self.id2label))):
                raise ValueError(
                    f"id2label keys must be 0..n-1, got {sorted(self.id2label)}; number the labels from 0"
                )
            if self.num_labels is not None and self.num_labels != len(self.id2label):
                if not _default_names(self.id2label):
                    raise ValueError(
                        f"num_labels={self.num_labels} but id2label (given, or read from the checkpoint's "
                        f"config.json) names {len(self.id2label)} labels {list(self.id2label.values())}; "
                        f"pass id2label with the {self.num_labels} new label names instead of num_labels"
                    )
                # HF's rule: a new num_labels regenerates default names LABEL_0..LABEL_{n-1}
                self.id2label = self.label2id = None
            else:
                self.num_labels = len(self.id2label)
        if self.num_labels is None:
            self.num_labels = 2
        if self.id2label is None:
            self.id2label = {i: f"LABEL_{i}" for i in range(self.num_labels)}
        inverse = {name: i for i, name in self.id2label.items()}
        if self.label2id is None:
            self.label2id = inverse
        elif self.label2id != inverse:
            raise ValueError(f"label2id {self.label2id} is not the inverse of id2label {self.id2label}")
        return self


def _default_names(id2label: dict[int, str]) -> bool:
    return all(name == f"LABEL_{i}" for i, name in id2label.items())


class SequenceClassificationOptions(LabelOptions):
    """Options of ``sequence-classification``."""

    problem_type: ProblemType | None = Field(
        None,
        description="loss rule; None = inferred from the first labels seen (HF's rule), then kept",
    )

    @model_validator(mode="after")
    def _problem_fits(self) -> SequenceClassificationOptions:
        if self.problem_type == "single_label_classification" and self.num_labels == 1:
            raise ValueError(
                "problem_type='single_label_classification' needs num_labels >= 2 (one logit cannot be "
                "softmaxed); use num_labels >= 2, or problem_type='regression'"
            )
        return self


class TokenClassificationOptions(LabelOptions):
    """Options of ``token-classification``."""


class QuestionAnsweringOptions(LabelOptions):
    """Options of ``question-answering``: the span head has exactly two outputs (start, end)."""

    @model_validator(mode="after")
    def _two_outputs(self) -> QuestionAnsweringOptions:
        if self.num_labels != 2:
            raise ValueError(
                f"question-answering predicts start and end logits, so num_labels must be 2, got "
                f"{self.num_labels}; drop num_labels (and id2label) or set it to 2"
            )
        return self


class SentenceEmbeddingOptions(BaseModel):
    """Options of ``sentence-embedding`` (sentence-transformers' Pooling and Normalize modules)."""

    model_config = ConfigDict(extra="forbid")

    pooling: PoolingMode = Field(
        "mean", description="mean, cls (first real token), max, or mean_sqrt_len_tokens over real tokens"
    )
    normalize: bool = Field(False, description="L2-normalise the pooled vector (sentence-transformers' Normalize)")
