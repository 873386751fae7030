"""Prometheus metrics, one registry per application (tests create many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("hoinghi_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("hoinghi_http_request_seconds", "HTTP request latency", ["route"],
                                 registry=self.registry)
        self.logins = Counter("hoinghi_logins_total", "Login attempts", ["outcome"], registry=self.registry)
        self.units = Gauge("hoinghi_units", "Units in the tree", registry=self.registry)
        self.exports = Counter("hoinghi_minutes_exports_total", "Minutes files answered, rendered or from the cache",
                               ["format", "outcome"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
