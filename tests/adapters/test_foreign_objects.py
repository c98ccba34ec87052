"""Broker objects that other programs made otherwise: clear errors, never a 500."""

from __future__ import annotations

import kombu
import pytest

from messaging.errors import BrokerUnavailable, SubscriptionConflict
from messaging.model import OutgoingMessage
from tests.backends import RABBITMQ_URL, _reachable_rabbitmq


def test_an_exchange_of_another_type(open_service, fresh, used_names) -> None:
    _reachable_rabbitmq(RABBITMQ_URL)
    topic = fresh("direct")
    with kombu.Connection(RABBITMQ_URL, connect_timeout=2) as connection:
        kombu.Exchange(topic, "direct", durable=True)(connection.default_channel).declare()
    service = open_service(RABBITMQ_URL)
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

    from tests.backends import REDIS_URL, _reachable_redis

    _reachable_redis(REDIS_URL)
    service = open_service(REDIS_URL)
    topic, sub = fresh("t"), fresh("s")
    service.create_subscription(sub, topic)
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(sub)
    client.set(sub, "not a list")
    try:
        with pytest.raises(BrokerUnavailable, match="WRONGTYPE"):
            service.publish(topic, [OutgoingMessage.text("x")])
    finally:
        client.delete(sub)
        client.close()
