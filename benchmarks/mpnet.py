"""The MPNet row (issue 14): bertzoo vs sentence-transformers fp32 on a base-size MPNet folder, same run.

Builds, once, a sentence-transformers folder around a random-weight ``MPNetModel`` of
all-mpnet-base-v2's shape (hidden 768, 12 layers, 12 heads, FFN 3072, 514 positions, 384-token
``max_seq_length``), with mean pooling and ``Normalize``, under ``$BERTZOO_BENCH_CACHE``
(default ``<tmp>/bertzoo-bench-cache``). Its tokenizer is an ``MPNetTokenizer`` over
all-MiniLM-L6-v2's WordPiece vocabulary with MPNet's specials in front (``<s> <pad> </s> <unk>``)
and ``<mask>`` at the end: 30,527 entries, as all-mpnet-base-v2's. Random weights change nothing
in the speed; the cosine checks that both run the same model.

Then runs benchmarks/embed.py on it (``--only st 'bertzoo fp32'`` unless ``--only`` is given;
every other embed.py option passes through):

    python benchmarks/mpnet.py --quick           # 200 paragraphs, best of 2, 2 cold runs
    python benchmarks/mpnet.py --n 1000          # the row for the docs (quiet machine)
    python benchmarks/mpnet.py --quick --only st bertzoo ov ort   # with the peers too
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import embed  # noqa: E402

SHAPE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
             max_position_embeddings=514, pad_token_id=1, bos_token_id=0, eos_token_id=2)
MAX_SEQ_LENGTH = 384  # all-mpnet-base-v2's
NAME = "mpnet-base-random-v1"


def build_folder(root: Path | None = None) -> Path:
    """The sentence-transformers folder (built on the first call, reused after)."""
    root = root or Path(os.environ.get("BERTZOO_BENCH_CACHE", Path(tempfile.gettempdir()) / "bertzoo-bench-cache"))
    out = root / NAME
    if (out / "modules.json").exists():
        return out
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer, models

    words = (Path(embed.model_path()) / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", *words, "<mask>"])}
    tokenizer = transformers.MPNetTokenizer(vocab=vocab)
    torch.manual_seed(0)
    model = transformers.MPNetModel(transformers.MPNetConfig(vocab_size=len(vocab), **SHAPE), add_pooling_layer=False)
    trunk = out.with_name(NAME + "-trunk")
    model.save_pretrained(trunk)
    tokenizer.save_pretrained(trunk)
    word = models.Transformer(str(trunk), max_seq_length=MAX_SEQ_LENGTH)
    pool = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="mean")
    tmp = out.with_name(NAME + ".tmp")
    SentenceTransformer(modules=[word, pool, models.Normalize()], device="cpu").save(str(tmp))
    tmp.replace(out)
    print(f"built {out} (random MPNet, {sum(p.numel() for p in model.parameters()) / 1e6:.0f} M parameters)")
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    argv = list(sys.argv[1:] if argv is None else argv)
    folder = build_folder()
    if "--only" not in argv:
        argv += ["--only", "st", "bertzoo fp32"]
    return embed.main(["--model", str(folder), *argv])


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    main()
