"""The ASGI application: routes, and around each the checks every request passes.

In order: the bearer token (``--api-key``; ``hmac.compare_digest``, so the compare takes the
same time whatever the guess), admission (at most ``max_concurrent_requests`` at once, else 429 with
``Retry-After``), the body (over ``max_body_bytes`` → 413, before it is read in full when
``Content-Length`` says so), JSON parsing (malformed → 400, not an object → 422), then the route.
Any failure becomes a JSON error body; an unexpected one is logged and answered 500, and the
server keeps serving.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bertzoo.errors import BertzooError, InputError
from bertzoo.serve import routes
from bertzoo.serve.batcher import ModelWorker
from bertzoo.serve.config import RETRY_AFTER_S, ServeConfig
from bertzoo.serve.metrics import Metrics
from bertzoo.serve.models import ModelTable
from bertzoo.serve.schemas import ApiError

log = logging.getLogger("bertzoo.serve")
Handler = Callable[[Any, Any], Awaitable[Response]]


@dataclass
class ServerState:
    """What the handlers share: the settings, the models (each with its worker), the metrics."""

    config: ServeConfig
    models: ModelTable
    metrics: Metrics

    def start(self) -> None:
        for m in self.models.models:
            if m.worker is None:
                m.worker = ModelWorker(m.name, m.pipelines.get("embed"), batch_tokens=self.config.batch_tokens,
                                       max_wait_s=self.config.max_wait_ms / 1000, metrics=self.metrics,
                                       threads=self.config.threads)
                m.worker.start()

    def stop(self) -> None:
        for m in self.models.models:
            if m.worker is not None:
                m.worker.close(timeout=self.config.graceful_s)


def _authorized(request: Request, key: str) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


async def _read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    too_big = ApiError(413, f"the request body is over the limit of {limit:,} bytes; send fewer or shorter texts "
                            "per request, or start the server with a larger --max-body-bytes", code="body_too_large")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON ({exc}); send a JSON object",
                       code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(422, f"the request body is a JSON {type(body).__name__}; send a JSON object with the fields "
                            "of this route", code="invalid_body")
    return body


def endpoint(state: ServerState, route: str, handler: Handler, *, body: bool, auth: bool = True,
             admit: bool = True) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` behind the auth, admission, body and error checks, with its metrics."""
    openai_style = route.startswith("/v1/")
    config, metrics = state.config, state.metrics

    async def serve(request: Request) -> Response:
        start, admitted = time.perf_counter(), False
        try:
            if auth and config.api_key is not None and not _authorized(request, config.api_key):
                raise ApiError(401, "missing or wrong API key; send the header 'Authorization: Bearer KEY' with the "
                                    "key the server was started with (--api-key or BERTZOO_API_KEY)",
                               code="invalid_api_key", headers={"www-authenticate": "Bearer"})
            if admit:
                if metrics.in_flight >= config.max_concurrent_requests:
                    raise ApiError(429, f"the server is at its limit of {config.max_concurrent_requests} concurrent "
                                        f"requests; retry after {RETRY_AFTER_S} s",
                                   code="overloaded", headers={"retry-after": str(RETRY_AFTER_S)})
                metrics.enter()
                admitted = True
            payload = await _read_json(request, config.max_body_bytes) if body else None
            response = await handler(state, payload)
        except ApiError as exc:
            response = JSONResponse(exc.body(openai_style), status_code=exc.status, headers=exc.headers)
        except InputError as exc:  # the task refused the input (e.g. fill-mask without a mask token)
            response = JSONResponse(ApiError(422, str(exc)).body(openai_style), status_code=422)
        except BertzooError as exc:
            log.error("%s failed: %s", route, exc)
            response = JSONResponse(ApiError(500, str(exc)).body(openai_style), status_code=500)
        except Exception:
            log.exception("%s failed", route)
            response = JSONResponse(ApiError(500, "internal error; the server log has the traceback").body(
                openai_style), status_code=500)
        finally:
            if admitted:
                metrics.leave()
        metrics.request(route, response.status_code, time.perf_counter() - start)
        return response

    return serve


async def _health(state: ServerState, body: Any) -> Response:
    return JSONResponse({"status": "ok"})


async def _metrics(state: ServerState, body: Any) -> Response:
    return PlainTextResponse(state.metrics.render(), media_type="text/plain; version=0.0.4")


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (unknown path 404, wrong method 405) as JSON too."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    body = ApiError(status, f"{request.method} {request.url.path}: {detail}").body(request.url.path.startswith("/v1/"))
    return JSONResponse(body, status_code=status)


def create_app(config: ServeConfig, models: ModelTable, metrics: Metrics | None = None) -> Starlette:
    """The Starlette app serving ``models``; the batching workers start and stop with its lifespan."""
    state = ServerState(config, models, metrics or Metrics())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            state.stop()  # uvicorn calls this after in-flight requests are answered

    table: list[tuple[str, Handler, str, dict[str, bool]]] = [
        ("/v1/embeddings", routes.openai_embeddings, "POST", {"body": True}),
        ("/v1/models", routes.openai_models, "GET", {"body": False, "admit": False}),
        ("/embed", routes.tei_embed, "POST", {"body": True}),
        ("/rerank", routes.tei_rerank, "POST", {"body": True}),
        ("/predict", routes.tei_predict, "POST", {"body": True}),
        ("/fill-mask", routes.fill_mask, "POST", {"body": True}),
        ("/info", routes.info, "GET", {"body": False, "admit": False}),
        ("/health", _health, "GET", {"body": False, "admit": False, "auth": False}),
        ("/metrics", _metrics, "GET", {"body": False, "admit": False}),
    ]
    app_routes = [Route(path, endpoint(state, path, handler, **flags), methods=[method])
                  for path, handler, method, flags in table]
    app = Starlette(routes=app_routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error})
    app.state.bertzoo = state
    return app


__all__ = ["ServerState", "create_app", "endpoint"]
