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
    pytest.skip(reason)  # the broker is unreachable and not required


def memory_factory() -> BrokerFactory:
    from adapters.memory import MemoryBroker

    return MemoryBroker


BACKENDS: dict[str, Callable[[], BrokerFactory]] = {
    "memory": memory_factory,
}


def _reachable_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        unreachable(url, error)


REDIS_URL = os.environ.get("MESSAGING_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get(
    "MESSAGING_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"
)


def redis_factory() -> BrokerFactory:
    from adapters.redis import RedisBroker

    _reachable_redis(REDIS_URL)
    return lambda: RedisBroker(REDIS_URL)


_fake_redis_url: str | None = None


def fake_redis_url() -> str:
    """A fakeredis server in a thread of this process, speaking real TCP."""
    global _fake_redis_url
    if _fake_redis_url is None:
        import socket
        import threading

        from fakeredis import TcpFakeServer

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
        threading.Thread(target=server.serve_forever, name="fakeredis", daemon=True).start()
        _fake_redis_url = f"redis://127.0.0.1:{port}/0"
    return _fake_redis_url


def fakeredis_factory() -> BrokerFactory:
    from adapters.redis import RedisBroker

    url = fake_redis_url()
    return lambda: RedisBroker(url)


BACKENDS["redis"] = redis_factory
BACKENDS["fakeredis"] = fakeredis_factory


def _reachable_rabbitmq(url: str) -> None:
    import kombu

    connection = kombu.Connection(url, connect_timeout=2)
    try:
        connection.connect()
    except OSError as error:
        unreachable(url, error)
    except Exception as error:
        unreachable(url, error)
    finally:
        connection.release()


def rabbitmq_factory() -> BrokerFactory:
    from adapters.rabbitmq import RabbitMQBroker

    _reachable_rabbitmq(RABBITMQ_URL)
    return lambda: RabbitMQBroker(RABBITMQ_URL)


BACKENDS["rabbitmq"] = rabbitmq_factory


def delete_exchanges(names: list[str]) -> None:
    """Topics are exchanges on RabbitMQ, and the port never deletes a topic."""
    import kombu

    with kombu.Connection(RABBITMQ_URL, connect_timeout=2) as connection:
        channel = connection.channel()
        for name in names:
            channel.exchange_delete(name)


def reachable_url(backend: str) -> str:
    """The broker URL of a backend: memory, fakeredis, redis or rabbitmq; a real broker
    that cannot be reached skips (or, under MESSAGING_REQUIRE_BROKERS=1, fails) the test."""
    if backend == "rabbitmq":
        _reachable_rabbitmq(RABBITMQ_URL)
        return RABBITMQ_URL
    if backend == "redis":
        _reachable_redis(REDIS_URL)
        return REDIS_URL
    return fake_redis_url() if backend == "fakeredis" else "memory://"
