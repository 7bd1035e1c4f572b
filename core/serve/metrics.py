"""Prometheus text exposition (format 0.0.4) of the server's counters, gauges and histograms.

Written by hand, not with prometheus_client: five metric families do not need a dependency. Every
update takes one lock; the event loop and the batching threads both write.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Sequence

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
BATCH_TOKEN_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
Labels = tuple[tuple[str, str], ...]


class _Histogram:
    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)  # the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value

    def lines(self, name: str, labels: Labels) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f"{name}_bucket{_fmt((*labels, ('le', le)))} {running}")
        out.append(f"{name}_sum{_fmt(labels)} {self.sum:.6g}")
        out.append(f"{name}_count{_fmt(labels)} {running}")
        return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(labels: Labels) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}" if labels else ""


class Metrics:
    """The server's metrics: requests by route and status, request latency, tokens embedded, forward
    batch sizes (texts and tokens), texts waiting in the batching queues, requests in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[Labels, int] = {}
        self._latency: dict[Labels, _Histogram] = {}
        self._tokens: dict[Labels, int] = {}
        self._batch_size: dict[Labels, _Histogram] = {}
        self._batch_tokens: dict[Labels, _Histogram] = {}
        self._queued: dict[Labels, int] = {}
        self.in_flight = 0

    def request(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (("route", route), ("status", str(status)))
            self._requests[key] = self._requests.get(key, 0) + 1
            self._latency.setdefault((("route", route),), _Histogram(LATENCY_BUCKETS)).observe(seconds)

    def tokens(self, model: str, count: int) -> None:
        with self._lock:
            key = (("model", model),)
            self._tokens[key] = self._tokens.get(key, 0) + int(count)

    def batch(self, model: str, texts: int, tokens: int) -> None:
        with self._lock:
            key = (("model", model),)
            self._batch_size.setdefault(key, _Histogram(BATCH_SIZE_BUCKETS)).observe(texts)
            self._batch_tokens.setdefault(key, _Histogram(BATCH_TOKEN_BUCKETS)).observe(tokens)

    def queued(self, model: str, change: int) -> None:
        with self._lock:
            key = (("model", model),)
            self._queued[key] = self._queued.get(key, 0) + change

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def render(self) -> str:
        """Every metric in Prometheus' text format."""
        with self._lock:
            lines: list[str] = []
            _family(lines, "bertzoo_requests_total", "counter", "HTTP requests by route and status",
                    [f"bertzoo_requests_total{_fmt(k)} {v}" for k, v in sorted(self._requests.items())])
            _family(lines, "bertzoo_request_duration_seconds", "histogram", "request latency by route",
                    [line for k, h in sorted(self._latency.items())
                     for line in h.lines("bertzoo_request_duration_seconds", k)])
            _family(lines, "bertzoo_tokens_total", "counter", "tokens embedded (special tokens included)",
                    [f"bertzoo_tokens_total{_fmt(k)} {v}" for k, v in sorted(self._tokens.items())])
            _family(lines, "bertzoo_batch_size", "histogram", "texts per forward pass of the embedding batcher",
                    [line for k, h in sorted(self._batch_size.items()) for line in h.lines("bertzoo_batch_size", k)])
            _family(lines, "bertzoo_batch_tokens", "histogram", "real tokens per forward pass of the embedding batcher",
                    [line for k, h in sorted(self._batch_tokens.items())
                     for line in h.lines("bertzoo_batch_tokens", k)])
            _family(lines, "bertzoo_queue_depth", "gauge", "texts waiting for a forward pass",
                    [f"bertzoo_queue_depth{_fmt(k)} {v}" for k, v in sorted(self._queued.items())])
            _family(lines, "bertzoo_requests_in_flight", "gauge", "requests admitted and not yet answered",
                    [f"bertzoo_requests_in_flight {self.in_flight}"])
            return "\n".join(lines) + "\n"


def _family(lines: list[str], name: str, kind: str, help_text: str, samples: list[str]) -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]


__all__ = ["BATCH_SIZE_BUCKETS", "BATCH_TOKEN_BUCKETS", "LATENCY_BUCKETS", "Metrics"]
