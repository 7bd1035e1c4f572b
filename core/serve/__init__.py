"""``bertzoo serve``: embeddings, reranking, classification and fill-mask over HTTP.

OpenAI-compatible ``POST /v1/embeddings`` and text-embeddings-inference (TEI) compatible
``/embed``, ``/rerank``, ``/predict``, plus ``/fill-mask``, ``/health``, ``/info`` and ``/metrics``,
on uvicorn + starlette (the ``serve`` extra). Texts of concurrent embedding requests share forward
passes (:mod:`bertzoo.serve.batcher`). docs/serve.md is the user's guide.

Importing this package stays light: starlette and uvicorn load only in :mod:`bertzoo.serve.app`
and :mod:`bertzoo.serve.server`.
"""

from __future__ import annotations

from bertzoo.serve.config import ServeConfig

__all__ = ["ServeConfig"]
