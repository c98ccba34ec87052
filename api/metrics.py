"""Prometheus metrics of one gateway process."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from messaging.errors import MessagingError
from messaging.service import MessagingService


class Metrics:
    def __init__(self, service: MessagingService) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "messaging_http_request_seconds",
            "HTTP request latency, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
        )
        self.published = Counter(
            "messaging_published_messages_total", "Messages published.", registry=self.registry
        )
        self.unroutable = Counter(
            "messaging_unroutable_messages_total",
            "Published messages that matched no subscription.",
            registry=self.registry,
        )
        self.pulled = Counter(
            "messaging_pulled_messages_total",
            "Messages delivered by pulls, by whether they were leased or auto-acked.",
            ["mode"],
            registry=self.registry,
        )
        self.settled = Counter(
            "messaging_receipts_total",
            "Receipts acked, nacked or extended, by action and outcome (done or unknown).",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.registry.register(_SubscriptionCollector(service))


class _SubscriptionCollector(Collector):
    """Depths read from the broker at scrape time; dead letters are the depths of the
    ``.dead-letter`` subscriptions."""

    def __init__(self, service: MessagingService) -> None:
        self._service = service

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "messaging_subscription_depth", "Messages ready in a subscription.", labels=["name"]
        )
        dead = GaugeMetricFamily(
            "messaging_dead_letters", "Messages in a dead-letter subscription.", labels=["name"]
        )
        up = GaugeMetricFamily("messaging_broker_up", "1 if the broker answered this scrape.")
        try:
            subscriptions = self._service.list_subscriptions()
        except MessagingError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for info in subscriptions:
            depth.add_metric([info.config.name], info.depth)
            if info.config.topic is None:
                dead.add_metric([info.config.name], info.depth)
        yield from (up, depth, dead)
