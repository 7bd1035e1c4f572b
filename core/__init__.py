"""bertzoo: a plugin-based model zoo for the BERT family.

Importing bertzoo is cheap: torch and the plugins load only when something needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bertzoo._lazy import lazy_names
from bertzoo.errors import (
    BertzooError,
    CheckpointError,
    ComponentNotFoundError,
    IncompatibleComponentError,
    InputError,
    PluginError,
    SpecError,
)
from bertzoo.hookspecs import PLUGIN_API_VERSION, hookimpl

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access (PEP 562)
_LAZY = {
    "ModelSpec": "bertzoo.spec",
    "ComponentSpec": "bertzoo.spec",
    "Registry": "bertzoo.registry",
    "get_registry": "bertzoo.discovery",
    "build": "bertzoo.factory",
    "resolve_spec": "bertzoo.factory",
    "from_pretrained": "bertzoo.pretrained",
    "save_pretrained": "bertzoo.pretrained",
    "BertModel": "bertzoo.model",
    "explain_attention": "bertzoo.selection",
    "embed": "bertzoo.inference.pipeline",
    "classify": "bertzoo.inference.pipeline",
    "fill_mask": "bertzoo.inference.pipeline",
    "rerank": "bertzoo.inference.pipeline",
    "token_classify": "bertzoo.inference.pipeline",
    "answer": "bertzoo.inference.pipeline",
    "similarity": "bertzoo.inference.pipeline",
    "Pipeline": "bertzoo.inference.pipeline",
    "SentenceEncoder": "bertzoo.inference.sentence_encoder",
    "CrossEncoder": "bertzoo.inference.cross_encoder",
    "util": "bertzoo.util",
    "embed_stream": "bertzoo.corpus",
    "Tokenizer": "bertzoo.inference.tokenizer",
    "train": "bertzoo.train",
}


def list_components(kind: str | None = None, pattern: str = "*", exclude: Any = ()) -> list[str]:
    """Full names of registered components, with shell-style wildcards (like timm's ``list_models``)."""
    from bertzoo.discovery import get_registry

    return get_registry().list_components(kind, pattern, exclude)


__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = [
    "BertzooError", "CheckpointError", "ComponentNotFoundError", "IncompatibleComponentError",
    "InputError", "PluginError", "SpecError", "PLUGIN_API_VERSION", "hookimpl", "list_components",
    *_LAZY,
]

if TYPE_CHECKING:  # pragma: no cover
    from bertzoo.factory import build, resolve_spec  # noqa: F401
    from bertzoo.spec import ComponentSpec, ModelSpec  # noqa: F401
