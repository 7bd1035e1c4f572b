"""Render docs/api.md: the Python main-job API, generated from the signatures and docstrings.

Imported by docs/gen_reference.py (which writes the page and checks it is current). Each entry
is looked up by its public name (``bertzoo.embed``, ``bertzoo.SentenceEncoder.encode``, ...), so
the page shows exactly what a user calls; a name that is not there is an error, not a gap.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

# (section title, intro, [public dotted names]); a class lists the methods to show after it.
SECTIONS: list[tuple[str, str, list[str]]] = [
    ("One call per task",
     "Each loads the model once (cached for the last few option sets) and runs the task packed, "
     "length-sorted and token-budget batched; results come back in input order. `model=None` is "
     "all-MiniLM-L6-v2.",
     ["bertzoo.embed", "bertzoo.classify", "bertzoo.rerank", "bertzoo.fill_mask", "bertzoo.token_classify",
      "bertzoo.answer", "bertzoo.similarity", "bertzoo.inference.pipeline.model_info"]),
    ("Holding a model: `Pipeline`",
     "The one-call functions keep a `Pipeline` per option set; hold one yourself to control its "
     "lifetime.",
     ["bertzoo.Pipeline", "bertzoo.Pipeline.__init__", "bertzoo.Pipeline.embed", "bertzoo.Pipeline.classify",
      "bertzoo.Pipeline.rerank", "bertzoo.Pipeline.fill_mask", "bertzoo.Pipeline.token_classify",
      "bertzoo.Pipeline.answer", "bertzoo.inference.pipeline.get_pipeline",
      "bertzoo.inference.pipeline.clear_cache"]),
    ("sentence-transformers' names",
     "The classes and helpers a sentence-transformers user already knows, on bertzoo's engine "
     "(see [sentence-transformers.md](sentence-transformers.md) for the mapping).",
     ["bertzoo.SentenceEncoder", "bertzoo.SentenceEncoder.__init__", "bertzoo.SentenceEncoder.encode",
      "bertzoo.SentenceEncoder.encode_query", "bertzoo.SentenceEncoder.encode_document",
      "bertzoo.SentenceEncoder.similarity", "bertzoo.SentenceEncoder.similarity_pairwise",
      "bertzoo.SentenceEncoder.get_sentence_embedding_dimension", "bertzoo.CrossEncoder",
      "bertzoo.CrossEncoder.__init__", "bertzoo.CrossEncoder.predict", "bertzoo.CrossEncoder.rank",
      "bertzoo.util.cos_sim", "bertzoo.util.dot_score", "bertzoo.util.semantic_search"]),
    ("Corpus-scale embedding",
     "Bounded memory whatever the input's size; see the user guide's corpus section for shards, "
     "manifests and `--resume`.",
     ["bertzoo.embed_stream", "bertzoo.corpus.StreamChunk"]),
    ("Loading, saving, building",
     "",
     ["bertzoo.from_pretrained", "bertzoo.save_pretrained", "bertzoo.build"]),
]

_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def resolve(dotted: str) -> Any:
    """The object a public dotted name refers to (``bertzoo.Pipeline.embed``)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def _annotation(text: str) -> str:
    # string annotations (from __future__ import annotations) are shown without their quotes
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"" else text


def _parameter(p: inspect.Parameter) -> str:
    text = p.name
    if p.kind is p.VAR_POSITIONAL:
        text = "*" + text
    elif p.kind is p.VAR_KEYWORD:
        text = "**" + text
    if p.annotation is not p.empty:
        text += ": " + _annotation(p.annotation if isinstance(p.annotation, str) else inspect.formatannotation(
            p.annotation))
    if p.default is not p.empty:
        text += (" = " if p.annotation is not p.empty else "=") + _ADDRESS.sub("", repr(p.default))
    return text


def _signature(obj: Any, name: str) -> str:
    """``name(a, *, b=1) -> R``, one parameter a line when it would be long."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return name
    params = [p for p in sig.parameters.values() if p.name not in ("self", "cls")]
    parts: list[str] = []
    for i, p in enumerate(params):
        if p.kind is p.KEYWORD_ONLY and (i == 0 or params[i - 1].kind not in (p.KEYWORD_ONLY, p.VAR_POSITIONAL)):
            parts.append("*")
        parts.append(_parameter(p))
    returns = ""
    if sig.return_annotation is not sig.empty and not name.endswith(")"):
        ret = sig.return_annotation
        returns = " -> " + _annotation(ret if isinstance(ret, str) else inspect.formatannotation(ret))
    one_line = f"{name}({', '.join(parts)}){returns}"
    if len(one_line) <= 100:
        return one_line
    return f"{name}(\n" + "".join(f"    {part},\n" for part in parts) + f"){returns}"


_SECTION = re.compile(r"^(Args|Arguments|Returns|Yields|Raises|Attributes|Example|Examples):\s*$")


def _docstring(obj: Any) -> list[str]:
    """The docstring as Markdown: reST roles as code, Google-style sections as bold labels."""
    doc = inspect.getdoc(obj) or ""
    if doc.startswith("Initialize self."):  # object.__init__'s, not ours
        return []
    doc = re.sub(r":(?:func|meth|class|mod|data|attr|exc):`~?([^`]+)`", r"`\1`", doc)
    doc = doc.replace("``", "`")
    lines: list[str] = []
    in_section = False
    for line in doc.splitlines():
        match = _SECTION.match(line)
        if match:
            lines += ["", f"**{match.group(1)}**", ""]
            in_section = True
        elif in_section and line.startswith("    ") and not line.startswith("        "):
            lines.append("- " + line.strip())
        elif in_section and line.startswith("        "):
            lines[-1] += " " + line.strip()
        else:
            in_section = in_section and bool(line.strip())
            lines.append(line)
    return lines


def entry(dotted: str) -> list[str]:
    obj = resolve(dotted)
    name = dotted.removeprefix("bertzoo.inference.pipeline.").removeprefix("bertzoo.")
    if inspect.isclass(obj):
        lines = [f"### `{name}`", ""]
        doc = _docstring(obj)
        return lines + ([*doc, ""] if doc else [])
    shown = name.removesuffix(".__init__") + ("(...)" if name.endswith(".__init__") else "")
    lines = [f"#### `{shown}`" if "." in name else f"### `{shown}`", "", "```text",
             _signature(obj, name.removesuffix(".__init__")).removesuffix(" -> None"), "```", ""]
    doc = _docstring(obj)
    if not doc and name.endswith(".__init__"):  # the arguments are documented on the defining class
        owner = resolve(dotted.removesuffix(".__init__"))
        definer = next(c for c in inspect.getmro(owner) if "__init__" in vars(c))
        doc = _docstring(definer) if definer is not owner else []
    return lines + ([*doc, ""] if doc else [])


def render() -> str:
    lines = [
        "# Python API reference",
        "",
        "<!-- generated by docs/gen_reference.py from the signatures and docstrings; do not edit. -->",
        "<!-- regenerate: python docs/gen_reference.py -->",
        "",
        "The main job from Python: the one-call functions, `Pipeline`, sentence-transformers' names,",
        "corpus streaming and checkpoints. The command line is in [cli.md](cli.md); a tour with",
        "runnable examples is in the [user guide](user-guide.md).",
    ]
    for title, intro, names in SECTIONS:
        lines += ["", f"## {title}", ""]
        if intro:
            lines += [intro, ""]
        for dotted in names:
            lines += entry(dotted)
    text = "\n".join(line.rstrip() for line in lines)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"
