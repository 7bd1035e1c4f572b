"""``bertzoo serve``: the models over HTTP, OpenAI and TEI compatible (see docs/serve.md).

Needs the ``serve`` extra (uvicorn, starlette). The models load before the port opens, so a bad
``--model`` fails with one line and exit status 2, and a client that sees the port answer finds
every model ready.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Any

from bertzoo.cli._common import LazyChoices, _compute_names
from bertzoo.errors import BertzooError, InputError

API_KEY_ENV = "BERTZOO_API_KEY"


def _needs_extra() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise BertzooError(f"bertzoo serve needs uvicorn and starlette, which are not installed ({exc}); install "
                           "the serve extra: pip install 'bertzoo[serve]'") from None


def _positive(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise InputError(f"--{name.replace('_', '-')} {value} must be positive")


def run(args: argparse.Namespace) -> int:
    _needs_extra()
    _positive(args, "batch_tokens", "max_concurrent_requests", "max_body_bytes", "threads")
    if args.max_wait_ms < 0 or args.graceful_timeout < 0:
        raise InputError("--max-wait-ms and --graceful-timeout must be zero or more")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port} is not a TCP port; use 0..65535 (0 = any free port)")
    from bertzoo.cli._common import compute_option
    from bertzoo.inference.truncation import TruncationWarning
    from bertzoo.serve.config import ServeConfig

    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV) or None
    config = ServeConfig(host=args.host, port=args.port, api_key=api_key, batch_tokens=args.batch_tokens,
                         max_wait_ms=args.max_wait_ms, max_concurrent_requests=args.max_concurrent_requests,
                         max_body_bytes=args.max_body_bytes, auto_truncate=args.auto_truncate,
                         graceful_s=args.graceful_timeout, threads=args.threads, access_log=args.access_log)
    from bertzoo.serve.app import create_app
    from bertzoo.serve.models import ModelTable, load_model
    from bertzoo.serve.server import run_server

    compute = compute_option(args)
    table = ModelTable([load_model(m, head=args.head, compute=compute, device=args.device)
                        for m in (args.model or [None])])
    # truncation is reported per request (x-truncated-texts), not warned about on the console
    warnings.filterwarnings("ignore", category=TruncationWarning)
    for m in table.models:
        print(f"bertzoo: model {m.name!r}: {', '.join(sorted(m.pipelines))} ({m.folder})", file=sys.stderr)
    if config.api_key is None and config.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"bertzoo: warning: serving on {config.host} without --api-key: anyone who reaches the port can use it",
              file=sys.stderr)
    return run_server(create_app(config, table), config)


def add_parser(subparsers: Any) -> None:
    from bertzoo.serve.config import (
        DEFAULT_BATCH_TOKENS,
        DEFAULT_GRACEFUL_S,
        DEFAULT_HOST,
        DEFAULT_MAX_BODY_BYTES,
        DEFAULT_MAX_CONCURRENT,
        DEFAULT_MAX_WAIT_MS,
        DEFAULT_PORT,
    )

    p = subparsers.add_parser(
        "serve", help="serve models over HTTP (OpenAI /v1/embeddings, TEI /embed /rerank /predict)",
        description="Serve embedding, reranking, classification and fill-mask models over HTTP, with dynamic "
                    "batching across requests. Needs the serve extra: pip install 'bertzoo[serve]'.",
    )
    p.add_argument("--model", "-m", action="append", default=None, metavar="[NAME=]MODEL",
                   help="model folder or hub id, optionally named (repeat to serve several; default: "
                        "all-MiniLM-L6-v2). Clients pick one with the request's 'model' field")
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default %(default)s: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s; 0 = any free port)")
    p.add_argument("--api-key", default=None, metavar="KEY",
                   help=f"require 'Authorization: Bearer KEY' on every route but /health (default: ${API_KEY_ENV})")
    p.add_argument("--head", default=None, metavar="NAME", help="the registered head to serve with (default: the "
                   "one each checkpoint records)")
    compute = LazyChoices(_compute_names, shown=lambda name: ":" not in name)
    p.add_argument("--compute", default=None, choices=compute, metavar="NAME",
                   help="compute precision: %(choices)s (default float32)")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16"), help="alias of --compute")
    p.add_argument("--quantize", default=None, choices=("int8",), help="alias of --compute int8")
    p.add_argument("--device", default=None, help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    limits = p.add_argument_group("batching and limits")
    limits.add_argument("--batch-tokens", type=int, default=DEFAULT_BATCH_TOKENS, metavar="N",
                        help="real tokens per forward pass, across requests (default %(default)s)")
    limits.add_argument("--max-wait-ms", type=float, default=DEFAULT_MAX_WAIT_MS, metavar="MS",
                        help="how long an idle model waits for more texts to fill a batch (default %(default)s)")
    limits.add_argument("--max-concurrent-requests", type=int, default=DEFAULT_MAX_CONCURRENT, metavar="N",
                        help="requests served at once; more get 429 with Retry-After (default %(default)s)")
    limits.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, metavar="BYTES",
                        help="larger request bodies get 413 (default %(default)s)")
    trunc = limits.add_mutually_exclusive_group()
    trunc.add_argument("--auto-truncate", dest="auto_truncate", action="store_true", default=True,
                       help="cut texts over the model's maximum length when a request does not say (default)")
    trunc.add_argument("--no-auto-truncate", dest="auto_truncate", action="store_false",
                       help="refuse them with 413 unless the request sends truncate=true (TEI's default)")
    limits.add_argument("--graceful-timeout", type=float, default=DEFAULT_GRACEFUL_S, metavar="S",
                        help="on SIGTERM/SIGINT, seconds in-flight requests get to finish (default %(default)s)")
    p.add_argument("--access-log", action="store_true", help="log every request on stderr")
    p.set_defaults(func=run)
