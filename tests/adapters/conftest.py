from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.backends import delete_exchanges, reachable_url

KOMBU_BACKENDS = ["fakeredis", "rabbitmq", "redis"]


@pytest.fixture(params=KOMBU_BACKENDS)
def backend_url(request: pytest.FixtureRequest, used_names: list[str]) -> Iterator[str]:
    """The URL of one real (or fakeredis) broker the kombu adapters run on."""
    yield reachable_url(request.param)
    if request.param == "rabbitmq":
        delete_exchanges(used_names)


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def broker_for(url: str):
    from messaging.registry import create_broker

    return create_broker(url)


@pytest.fixture
def open_service(prefix: str) -> Iterator:
    """Opens services on a URL; closes them, deleting this test's subscriptions, afterwards."""
    from messaging.service import MessagingService

    opened: list[MessagingService] = []

    def open_on(url: str) -> MessagingService:
        service = MessagingService(broker_for(url))
        opened.append(service)
        return service

    yield open_on
    for service in opened:
        try:
            for info in service.list_subscriptions():
                if info.config.name.startswith(prefix):
                    service.delete_subscription(info.config.name)
        except Exception:
            pass
        service.close()
