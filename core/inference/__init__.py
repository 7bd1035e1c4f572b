"""The main job: pipelines, batching, truncation, tokenizer, tasks and compute precisions."""
