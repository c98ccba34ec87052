from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from messaging.port import Broker
from messaging.service import MessagingService

from .backends import BACKENDS, BrokerFactory, delete_exchanges


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:10]}-"


@pytest.fixture
def used_names() -> list[str]:
    return []


@pytest.fixture
def fresh(prefix: str, used_names: list[str]) -> Callable[[str], str]:
    """Unique names per test, so tests never see each other's topics or subscriptions."""

    def name(label: str) -> str:
        used_names.append(prefix + label)
        return prefix + label

    return name


@pytest.fixture(params=sorted(BACKENDS))
def broker_factory(
    request: pytest.FixtureRequest, prefix: str, used_names: list[str]
) -> Iterator[BrokerFactory]:
    """Opens brokers on one backend; every broker it opened is closed afterwards."""
    factory = BACKENDS[request.param]()
    opened: list[Broker] = []

    def open_broker() -> Broker:
        broker = factory()
        opened.append(broker)
        return broker

    yield open_broker
    for broker in opened:
        for info in broker.list_subscriptions() if _alive(broker) else []:
            if info.config.name.startswith(prefix):
                broker.delete_subscription(info.config.name)
        broker.close()
    if request.param == "rabbitmq":
        delete_exchanges(used_names)


def _alive(broker: Broker) -> bool:
    try:
        broker.check_health()
    except Exception:
        return False
    return True


@pytest.fixture
def broker(broker_factory: BrokerFactory) -> Broker:
    return broker_factory()


@pytest.fixture
def service(broker: Broker) -> MessagingService:
    return MessagingService(broker)
