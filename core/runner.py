"""Deprecated location, kept for one release; import from :mod:`bertzoo.inference` (``bertzoo.embed``,
``bertzoo.Pipeline``, ...)."""

from bertzoo.inference.batching import DEFAULT_BATCH_TOKENS, plan_batches
from bertzoo.inference.classify import default_function
from bertzoo.inference.engine import PipelineOptions
from bertzoo.inference.pipeline import (
    Pipeline,
    answer,
    classify,
    clear_cache,
    embed,
    fill_mask,
    get_pipeline,
    model_info,
    rerank,
    similarity,
    token_classify,
)
from bertzoo.inference.truncation import TRUNCATE_POLICIES, TruncationWarning, truncation_summary

__all__ = [
    "DEFAULT_BATCH_TOKENS", "TRUNCATE_POLICIES", "Pipeline", "PipelineOptions", "TruncationWarning", "answer",
    "classify", "clear_cache", "default_function", "embed", "fill_mask", "get_pipeline", "model_info",
    "plan_batches", "rerank", "similarity", "token_classify", "truncation_summary",
]
