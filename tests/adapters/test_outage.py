"""A broker that goes away: calls fail fast with BrokerUnavailable, never hang, and work
again once it is back, with no restart. The broker sits behind a TCP proxy the test cuts;
the shared brokers themselves are never stopped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from messaging.errors import BrokerUnavailable
from messaging.model import OutgoingMessage
from messaging.service import MessagingService
from tests.proxy import Proxy

from .conftest import with_port

BOUND_SECONDS = 5.0
"""Connect timeout (2 s) or I/O timeout (3 s), plus slack for a loaded machine."""


@pytest.fixture
def proxy(backend_url: str) -> Iterator[Proxy]:
    target = urlsplit(backend_url)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 0)
    yield proxy
    proxy.close()


def fails_fast(call: Callable[[], object]) -> float:
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        call()
    return time.monotonic() - started


def exercise(service: MessagingService, sub: str, topic: str) -> None:
    service.publish(topic, [OutgoingMessage.text("x")])
    [message] = service.pull(sub, wait_seconds=5)
    assert service.ack(sub, [message.receipt]).done == 1


@pytest.mark.parametrize("outage", ["cut", "blackhole"])
def test_calls_fail_fast_while_the_broker_is_away_and_recover_after(
    backend_url: str, proxy: Proxy, open_service, fresh, outage: str
) -> None:
    service = open_service(with_port(backend_url, proxy.port))
    topic, sub = fresh("t"), fresh("s")
    service.create_subscription(sub, topic)
    exercise(service, sub, topic)

    getattr(proxy, outage)()

    calls = {  # health first: it must notice on connections that look alive
        "health": service.health,
        "publish": lambda: service.publish(topic, [OutgoingMessage.text("lost?")]),
        "pull": lambda: service.pull(sub, wait_seconds=1),
        "get": lambda: service.get_subscription(sub),
    }
    took = {name: fails_fast(call) for name, call in calls.items()}
    assert max(took.values()) < BOUND_SECONDS, took

    proxy.restore()
    if outage == "blackhole":
        proxy.cut()  # connections stuck in the black hole are dropped, as TCP would in time
        proxy.restore()
    service.health()
    service.create_subscription(fresh("after"), topic)
    exercise(service, sub, topic)
