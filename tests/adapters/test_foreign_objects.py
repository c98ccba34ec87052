"""Broker objects that other programs made otherwise: clear errors, never a 500."""

from __future__ import annotations

import kombu
import pytest

from messaging.errors import BrokerUnavailable, SubscriptionConflict
from messaging.model import OutgoingMessage
from tests.backends import reachable_url


def test_an_exchange_of_another_type(open_service, fresh, used_names) -> None:
    url = reachable_url("rabbitmq")
    topic = fresh("direct")
    with kombu.Connection(url, connect_timeout=2) as connection:
        kombu.Exchange(topic, "direct", durable=True)(connection.default_channel).declare()
    service = open_service(url)
    try:
        with pytest.raises(BrokerUnavailable, match="PRECONDITION_FAILED"):
            service.publish(topic, [OutgoingMessage.text("x")])
        with pytest.raises(SubscriptionConflict):
            service.create_subscription(fresh("s"), topic)
        with pytest.raises(BrokerUnavailable, match="PRECONDITION_FAILED"):
            service.publish(topic, [OutgoingMessage.text("x")])  # the pool recovered
    finally:
        from tests.backends import delete_exchanges

        delete_exchanges(used_names)


def test_a_redis_key_of_another_type(open_service, fresh) -> None:
    import redis

    url = reachable_url("redis")
    service = open_service(url)
    topic, sub = fresh("t"), fresh("s")
    service.create_subscription(sub, topic)
    client = redis.Redis.from_url(url)
    client.delete(sub)
    client.set(sub, "not a list")
    try:
        with pytest.raises(BrokerUnavailable, match="WRONGTYPE"):
            service.publish(topic, [OutgoingMessage.text("x")])
    finally:
        client.delete(sub)
        client.close()
