"""The server's settings: one frozen dataclass the CLI fills and every part of the server reads."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_HOST = "127.0.0.1"  # loopback unless told otherwise: an open port is the user's decision
DEFAULT_PORT = 8080
# real tokens per forward pass; bertzoo's offline default (bertzoo.inference.batching.DEFAULT_BATCH_TOKENS)
DEFAULT_BATCH_TOKENS = 4096
# how long an idle worker waits for more texts to fill a batch once the first has arrived
DEFAULT_MAX_WAIT_MS = 2.0
# requests admitted at once (TEI's --max-concurrent-requests); more get 429 with Retry-After
DEFAULT_MAX_CONCURRENT = 512
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024  # 4 MiB, about 3,000 paragraphs
DEFAULT_GRACEFUL_S = 30.0
RETRY_AFTER_S = 1


@dataclass(frozen=True)
class ServeConfig:
    """What ``bertzoo serve`` was told.

    Attributes:
        host / port: where to listen (port 0 = a free port, printed once listening).
        api_key: a bearer token every request except ``/health`` must carry; None = open.
        batch_tokens: real tokens per forward pass across requests.
        max_wait_ms: an idle worker's wait for more texts before running a partial batch.
        max_concurrent_requests: requests admitted at once; more are refused with 429.
        max_body_bytes: larger request bodies are refused with 413.
        auto_truncate: cut texts over the model's maximum length when a request does not say
            (``truncate`` absent); False refuses them with 413, as TEI does by default.
        graceful_s: on SIGTERM/SIGINT, how long in-flight requests may take to finish.
        threads: torch CPU threads for the forward passes (None = torch's own).
        access_log: log every request (uvicorn's access log).
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = field(default=None, repr=False)
    batch_tokens: int = DEFAULT_BATCH_TOKENS
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    auto_truncate: bool = True
    graceful_s: float = DEFAULT_GRACEFUL_S
    threads: int | None = None
    access_log: bool = False


__all__ = ["DEFAULT_BATCH_TOKENS", "DEFAULT_HOST", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_CONCURRENT",
           "DEFAULT_MAX_WAIT_MS", "DEFAULT_PORT", "RETRY_AFTER_S", "ServeConfig"]
