"""Prometheus metrics of one server, in a registry of its own (no global state).

``GET /metrics`` answers them in Prometheus' text format:

* ``torchann_requests_total{route, status}``: requests answered (route is the route's
  template, e.g. ``/v2/models/{name}/infer``; ``other`` for unknown paths).
* ``torchann_request_seconds{route}``: latency histogram, from the first byte read to the last
  byte written.
* ``torchann_batch_rows``: rows per forward pass; ``torchann_batch_requests``: requests per pass.
* ``torchann_rows_total``: rows answered; ``torchann_row_warnings_total{kind}``: per-row warnings
  given (unseen_category, out_of_range, missing_filled).
* ``torchann_in_flight``: requests inside the server now.

With ``--workers N`` each worker process counts its own requests (a scrape reaches one).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Metrics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536)


class Metrics:
    """The counters and histograms above; ``render()`` is the text a scrape gets."""

    def __init__(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError:  # pragma: no cover - the [serve] extra brings it
            from ..core.errors import UsageError

            raise UsageError("torchann serve needs prometheus_client; install torchann[serve]") from None
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("torchann_requests", "HTTP requests answered, by route and status",
                                ["route", "status"], registry=r)
        self.latency = Histogram("torchann_request_seconds", "Seconds from a request's arrival to its answer",
                                 ["route"], buckets=_LATENCY, registry=r)
        self.batch_rows = Histogram("torchann_batch_rows", "Rows per forward pass", buckets=_ROWS, registry=r)
        self.batch_requests = Histogram("torchann_batch_requests", "Requests per forward pass",
                                        buckets=_ROWS[:9], registry=r)
        self.rows = Counter("torchann_rows", "Rows answered", registry=r)
        self.warnings = Counter("torchann_row_warnings", "Per-row warnings given, by kind", ["kind"], registry=r)
        self.in_flight = Gauge("torchann_in_flight", "Requests inside the server now", registry=r)
        self.disconnects = Counter("torchann_client_disconnects", "Requests whose client left before the answer "
                                   "was sent (the answer was computed and dropped)", registry=r)
        self._routes: dict[tuple[str, int], Any] = {}
        self._latency: dict[str, Any] = {}

    def answered(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        counter = self._routes.get(key)
        if counter is None:  # label lookups are cached: this runs for every request
            counter = self._routes[key] = self.requests.labels(route, str(status))
            self._latency.setdefault(route, self.latency.labels(route))
        counter.inc()
        self._latency[route].observe(seconds)

    def batch(self, rows: int, requests: int) -> None:
        self.batch_rows.observe(rows)
        self.batch_requests.observe(requests)

    def answered_rows(self, rows: int, warning_counts: dict[str, dict[str, int]]) -> None:
        self.rows.inc(rows)
        for kind, columns in warning_counts.items():
            self.warnings.labels(kind).inc(sum(columns.values()))

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
