from __future__ import annotations

from collections.abc import Callable

import pytest
from falcon import testing

from adapters.memory import MemoryBroker
from api.app import create_app
from messaging.service import MessagingService
from messaging.settings import Settings

ClientFactory = Callable[..., testing.TestClient]


@pytest.fixture
def make_client() -> ClientFactory:
    """An in-process client of the WSGI app on a fresh in-memory broker."""

    def make(broker_url: str | None = None, **settings: object) -> testing.TestClient:
        from messaging.registry import create_broker

        broker = create_broker(broker_url) if broker_url else MemoryBroker()
        return testing.TestClient(create_app(MessagingService(broker), Settings(**settings)))

    return make


@pytest.fixture
def client(make_client: ClientFactory) -> testing.TestClient:
    return make_client()
