"""MPNet's heads: transformers' ``MPNetFor*`` (``models/mpnet/modeling_mpnet.py``).

MPNet's heads are RoBERTa's under other class names (the same keys, math, losses and pooler use):
``lm_head`` (dense → erf GELU → layer_norm → decoder tied to the word embeddings, ``lm_head.bias``),
``classifier.{dense,out_proj}`` on the first token with ``hidden_dropout_prob`` (MPNet's config has no
``classifier_dropout``), multiple choice on the tanh pooler, token classification and QA as BERT's.
They subclass :mod:`bertzoo.heads.roberta` and change nothing, so the shared code stays shared.
"""

from __future__ import annotations

from bertzoo.heads.roberta import (
    RobertaForMaskedLM,
    RobertaForMultipleChoice,
    RobertaForSequenceClassification,
)


class MPNetForMaskedLM(RobertaForMaskedLM):
    """transformers' ``MPNetForMaskedLM`` (``lm_head``; decoder tied to ``mpnet.embeddings.word_embeddings``)."""


class MPNetForSequenceClassification(RobertaForSequenceClassification):
    """transformers' ``MPNetForSequenceClassification``: dense → tanh → out_proj on token 0, no pooler."""


class MPNetForMultipleChoice(RobertaForMultipleChoice):
    """transformers' ``MPNetForMultipleChoice``: pooler → dropout(hidden) → classifier (1 output)."""
