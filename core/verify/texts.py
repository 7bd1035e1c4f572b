"""What verify feeds both models: varied texts and pairs, and the two batch layouts they run in.

:data:`TEXTS` and :data:`PAIRS` cover the cases where implementations drift apart: empty, one
letter, long past the maximum length, accents, CJK, emoji, control characters, text pairs,
``[MASK]`` in the text.
"""

from __future__ import annotations

from collections.abc import Sequence

# A paragraph long enough (~700 WordPiece tokens) to pass any BERT's 512 positions.
_LONG = " ".join(
    f"Paragraph sentence {i}: the committee reviewed budget line {i * 7} and approved it with "
    f"amendments, while observers noted the weather ({i % 5 + 18} degrees) and the late hour."
    for i in range(30)
)

TEXTS: tuple[str, ...] = (
    "",
    "a",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Crème brûlée, naïve façade, São Paulo and Zürich: déjà vu at the café.",
    "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다.",
    "Launch day 🚀🚀 went great 👍🏽, pizza 🍕 for everyone! ❤️",
    "Привет, мир! مرحبا بالعالم. Γειά σου κόσμε.",
    "def f(x): return x ** 2  # 3.14159, 1e-10, v2.13.0, https://example.com/a?b=c&d=%20",
    "WHY?!? Well... it's (complicated) -- [really] {truly} <seriously>.",
    "  tabs\tand\nnewlines\r\n  and   spaces\u00a0\u200b everywhere  ",
    "[MASK] is the capital of France.",
    "the " * 60,
    "Transformers read text as subword pieces; rare words such as antidisestablishmentarianism or "
    "pneumonoultramicroscopicsilicovolcanoconiosis split into many of them.",
    _LONG,
)

PAIRS: tuple[tuple[str, str], ...] = (
    ("How old are you?", "I am thirty-two years old."),
    ("Where is the Eiffel Tower?", "The Eiffel Tower is in Paris, France."),
    ("", "The first text of this pair is empty."),
    ("日本語の質問ですか？", "はい、そうです。"),
    ("Summarise the following report.", _LONG),
)


def batch_layouts(lengths: Sequence[int], batch_size: int) -> dict[str, list[list[int]]]:
    """Two batch layouts of the inputs: all at once (the padding-heaviest batch), and sorted by
    length in chunks of ``batch_size`` (what a length-sorting runner does)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return {
        "mixed": [list(range(len(lengths)))],
        "sorted": [order[i:i + batch_size] for i in range(0, len(order), batch_size)],
    }


def multiple_choice_inputs(texts: Sequence[str], pairs: Sequence[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Inputs of a multiple-choice head: each text or pair becomes a question with two answers."""
    out = [[(t, "Yes, that is right."), (t, "No, that is wrong.")] for t in texts]
    out += [[(a, b), (a, "None of the above.")] for a, b in pairs]
    return out


__all__ = ["PAIRS", "TEXTS", "batch_layouts", "multiple_choice_inputs"]
