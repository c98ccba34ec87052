"""Fan-out, work queues, topic patterns, unroutable detection, ordering."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from messaging.model import OutgoingMessage
from messaging.service import MessagingService

from .helpers import bodies, drain, publish_json


def test_message_published_before_any_pull_is_kept(service: MessagingService, fresh) -> None:
    topic, sub = fresh("orders"), fresh("audit")
    service.create_subscription(sub, topic)
    [message_id] = publish_json(service, topic, [{"n": 1}])

    [message] = service.pull(sub, max_messages=10)

    assert message.id == message_id
    assert message.topic == topic
    assert message.key == topic
    assert message.delivery_count == 1
    assert message.receipt
    assert bodies([message]) == [{"n": 1}]


def test_every_subscription_gets_its_own_copy(service: MessagingService, fresh) -> None:
    topic = fresh("orders")
    subs = [fresh("billing"), fresh("shipping"), fresh("audit")]
    for sub in subs:
        service.create_subscription(sub, topic)
    publish_json(service, topic, [1, 2])

    for sub in subs:
        assert bodies(drain(service, sub, 2)) == [1, 2]


def test_pullers_of_one_subscription_compete(service: MessagingService, fresh) -> None:
    topic, sub = fresh("jobs"), fresh("workers")
    service.create_subscription(sub, topic)
    publish_json(service, topic, list(range(6)))

    first = service.pull(sub, max_messages=3)
    second = service.pull(sub, max_messages=10)

    assert bodies(first) == [0, 1, 2]
    assert bodies(second) == [3, 4, 5]
    assert service.pull(sub, max_messages=10) == []


MATCHES = [
    ("#", "orders", True),
    ("#", "orders.eu.created", True),
    ("orders.#", "orders", True),
    ("orders.#", "orders.eu.created", True),
    ("orders.#", "ordersx.eu", False),
    ("orders.*", "orders", False),
    ("orders.*", "orders.eu", True),
    ("orders.*", "orders.eu.created", False),
    ("*.created", "eu.created", True),
    ("*.created", "orders.eu.created", False),
    ("orders.#.created", "orders.created", True),
    ("orders.#.created", "orders.eu.fr.created", True),
    ("orders.#.created", "orders.eu.deleted", False),
    ("#.created", "created", True),
    ("orders.eu.created", "orders.eu.created", True),
    ("orders.eu.created", "orders.eu", False),
]


@pytest.mark.parametrize(("pattern", "key", "matches"), MATCHES)
def test_topic_patterns_follow_amqp(
    service: MessagingService, fresh: Callable[[str], str], pattern: str, key: str, matches: bool
) -> None:
    topic, sub = fresh("events"), fresh("sub")
    service.create_subscription(sub, topic, pattern=pattern)

    result = service.publish(topic, [OutgoingMessage.text("x", key=key)])

    delivered = service.pull(sub, max_messages=1)
    assert [m.key for m in delivered] == ([key] if matches else [])
    assert result.unroutable == ([] if matches else result.ids)


def test_message_matching_no_subscription_is_unroutable(service: MessagingService, fresh) -> None:
    topic, other_topic = fresh("orders"), fresh("other")
    service.create_subscription(fresh("eu"), topic, pattern="orders.eu.#")
    service.create_subscription(fresh("elsewhere"), other_topic)

    result = service.publish(
        topic,
        [
            OutgoingMessage.text("a", key="orders.eu.created", id="routed"),
            OutgoingMessage.text("b", key="orders.us.created", id="lost"),
        ],
    )

    assert result.ids == ["routed", "lost"]
    assert result.unroutable == ["lost"]


def test_topic_with_no_subscription_drops_everything(service: MessagingService, fresh) -> None:
    result = service.publish(fresh("nobody"), [OutgoingMessage.text("a", id="x")])

    assert result.unroutable == ["x"]


def test_only_subscriptions_existing_at_publish_time_get_the_message(
    service: MessagingService, fresh
) -> None:
    topic, early, late = fresh("news"), fresh("early"), fresh("late")
    service.create_subscription(early, topic)
    publish_json(service, topic, ["before"])
    service.create_subscription(late, topic)
    publish_json(service, topic, ["after"])

    assert bodies(drain(service, early, 2)) == ["before", "after"]
    assert bodies(drain(service, late, 2, wait=0.2)) == ["after"]


def test_first_deliveries_keep_publish_order(service: MessagingService, fresh) -> None:
    topic, sub = fresh("log"), fresh("reader")
    service.create_subscription(sub, topic)
    for start in range(0, 60, 20):
        publish_json(service, topic, list(range(start, start + 20)))

    seen = []
    while batch := service.pull(sub, max_messages=7):
        seen.extend(bodies(batch))
        service.ack(sub, [m.receipt for m in batch if m.receipt])

    assert seen == list(range(60))


def test_pull_gives_at_most_max_messages(service: MessagingService, fresh) -> None:
    topic, sub = fresh("t"), fresh("s")
    service.create_subscription(sub, topic)
    publish_json(service, topic, list(range(5)))

    assert len(service.pull(sub, max_messages=2)) == 2
    assert len(service.pull(sub, max_messages=1000)) == 3
