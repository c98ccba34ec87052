"""Declaring, reading, listing and deleting subscriptions; depth; health."""

from __future__ import annotations

import pytest

from messaging.errors import SubscriptionConflict
from messaging.model import SubscriptionConfig
from messaging.service import MessagingService

from .helpers import publish_json


def test_declare_is_idempotent_for_the_same_config(service: MessagingService, fresh) -> None:
    topic, sub = fresh("t"), fresh("s")

    info, created = service.create_subscription(sub, topic, pattern="a.*", max_deliveries=3)
    again, created_again = service.create_subscription(sub, topic, pattern="a.*", max_deliveries=3)

    assert (created, created_again) == (True, False)
    assert info == again
    assert info.config == SubscriptionConfig(sub, topic, "a.*", 3, False)
    assert info.depth == 0


@pytest.mark.parametrize(
    "change",
    [
        {"pattern": "other.#"},
        {"max_deliveries": 5},
        {"dead_letter": True},
    ],
)
def test_declare_with_another_config_conflicts(
    service: MessagingService, fresh, change: dict
) -> None:
    topic, sub = fresh("t"), fresh("s")
    service.create_subscription(sub, topic)

    with pytest.raises(SubscriptionConflict):
        service.create_subscription(sub, topic, **change)
    with pytest.raises(SubscriptionConflict):
        service.create_subscription(sub, fresh("other-topic"))


def test_depth_counts_ready_messages_only(service: MessagingService, fresh) -> None:
    topic, sub = fresh("t"), fresh("s")
    service.create_subscription(sub, topic)
    publish_json(service, topic, list(range(5)))
    service.pull(sub, max_messages=2)

    assert service.get_subscription(sub).depth == 3


def test_list_shows_every_subscription_sorted(service: MessagingService, fresh) -> None:
    topic = fresh("t")
    names = [fresh("b"), fresh("a"), fresh("c")]
    for name in names:
        service.create_subscription(name, topic)
    publish_json(service, topic, ["x"])

    listed = [i for i in service.list_subscriptions() if i.config.name in names]

    assert [i.config.name for i in listed] == sorted(names)
    assert [i.depth for i in listed] == [1, 1, 1]


def test_dead_letter_subscription_is_created_with_its_subscription(
    service: MessagingService, fresh
) -> None:
    topic, sub = fresh("t"), fresh("s")

    service.create_subscription(sub, topic, dead_letter=True)

    dead = service.get_subscription(sub + ".dead-letter")
    assert dead.config == SubscriptionConfig(sub + ".dead-letter", None, None, 0, False)
    assert dead.depth == 0
    publish_json(service, topic, ["x"])
    assert service.get_subscription(sub + ".dead-letter").depth == 0


def test_delete_removes_subscription_and_messages_but_keeps_dead_letters(
    service: MessagingService, fresh
) -> None:
    topic, sub = fresh("t"), fresh("s")
    service.create_subscription(sub, topic, dead_letter=True)
    publish_json(service, topic, ["a", "b"])
    [leased, _] = service.pull(sub)
    service.nack(sub, [leased.receipt], requeue=False)

    service.delete_subscription(sub)

    names = [i.config.name for i in service.list_subscriptions()]
    assert sub not in names
    assert service.get_subscription(sub + ".dead-letter").depth == 1
    recreated, created = service.create_subscription(sub, topic, dead_letter=True)
    assert (created, recreated.depth) == (True, 0)


def test_health_names_the_broker(service: MessagingService) -> None:
    assert service.health() in {"memory", "redis", "rabbitmq"}
