"""Every backend the conformance suite runs on: a name, and how to open a broker on it.

A backend whose server cannot be reached skips its tests with the reason, unless
MESSAGING_REQUIRE_BROKERS=1 (CI), where it fails them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from messaging.port import Broker

BrokerFactory = Callable[[], Broker]


def require_brokers() -> bool:
    return os.environ.get("MESSAGING_REQUIRE_BROKERS", "") not in ("", "0")


def unreachable(what: str, error: BaseException) -> None:
    """Skip (or, under MESSAGING_REQUIRE_BROKERS=1, fail) because ``what`` is down."""
    reason = f"{what} is unreachable: {error}"
    if require_brokers():
        pytest.fail(f"{reason} (MESSAGING_REQUIRE_BROKERS=1)")
    pytest.skip(reason)


def memory_factory() -> BrokerFactory:
    from adapters.memory import MemoryBroker

    return MemoryBroker


BACKENDS: dict[str, Callable[[], BrokerFactory]] = {
    "memory": memory_factory,
}
