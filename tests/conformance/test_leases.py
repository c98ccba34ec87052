"""Leases, ack, nack, extend, redelivery, max_deliveries and dead letters, long polls.

Short leases go to the port directly: the service allows 1 s at least."""

from __future__ import annotations

import threading
import time

from messaging.errors import SubscriptionNotFound
from messaging.model import OutgoingMessage
from messaging.port import Broker
from messaging.service import MessagingService

from .helpers import bodies, publish_json

SHORT_LEASE = 0.3


def setup(service: MessagingService, fresh, label: str = "", **options) -> tuple[str, str]:
    topic, sub = fresh("topic" + label), fresh("sub" + label)
    service.create_subscription(sub, topic, **options)
    return topic, sub


def test_leased_message_is_hidden_from_other_pullers(service: MessagingService, fresh) -> None:
    topic, sub = setup(service, fresh)
    publish_json(service, topic, ["a"])

    assert len(service.pull(sub, lease_seconds=30)) == 1
    assert service.pull(sub, wait_seconds=0.5) == []
    assert service.get_subscription(sub).depth == 0


def test_lease_that_ends_without_ack_redelivers_with_higher_count(
    service: MessagingService, broker: Broker, fresh
) -> None:
    topic, sub = setup(service, fresh)
    [message_id] = publish_json(service, topic, ["a"])
    [first] = broker.pull(sub, 10, 0, SHORT_LEASE, False)

    [again] = broker.pull(sub, 10, 10, 30, False)

    assert (again.id, again.delivery_count) == (message_id, 2)
    assert first.delivery_count == 1
    assert again.receipt != first.receipt
    assert service.ack(sub, [first.receipt]).unknown == [first.receipt]
    assert service.ack(sub, [again.receipt]).done == 1


def test_ack_deletes_the_message(service: MessagingService, broker: Broker, fresh) -> None:
    topic, sub = setup(service, fresh)
    publish_json(service, topic, ["a", "b"])
    leased = broker.pull(sub, 10, 0, SHORT_LEASE, False)

    outcome = service.ack(sub, [m.receipt for m in leased])

    assert (outcome.done, outcome.unknown) == (2, [])
    assert broker.pull(sub, 10, SHORT_LEASE * 3, 30, False) == []
    assert service.get_subscription(sub).depth == 0


def test_receipts_not_held_are_reported_unknown(service: MessagingService, fresh) -> None:
    topic, sub = setup(service, fresh)
    other_topic, other = setup(service, fresh, "-other")
    publish_json(service, topic, ["a"])
    publish_json(service, other_topic, ["b"])
    [mine] = service.pull(sub)
    [foreign] = service.pull(other)

    first = service.ack(sub, [mine.receipt, "no-such-receipt", foreign.receipt])
    second = service.ack(sub, [mine.receipt])

    assert (first.done, first.unknown) == (1, ["no-such-receipt", foreign.receipt])
    assert (second.done, second.unknown) == (0, [mine.receipt])
    assert service.ack(other, [foreign.receipt]).done == 1


def test_ack_after_the_lease_ended_is_unknown(
    service: MessagingService, broker: Broker, fresh
) -> None:
    topic, sub = setup(service, fresh)
    publish_json(service, topic, ["a"])
    [leased] = broker.pull(sub, 10, 0, SHORT_LEASE, False)
    [redelivered] = broker.pull(sub, 10, 10, 30, False)

    assert service.ack(sub, [leased.receipt]).unknown == [leased.receipt]
    assert service.ack(sub, [redelivered.receipt]).done == 1


def test_nack_with_requeue_redelivers_at_once(service: MessagingService, fresh) -> None:
    topic, sub = setup(service, fresh)
    [message_id] = publish_json(service, topic, ["a"])
    [leased] = service.pull(sub, lease_seconds=600)

    outcome = service.nack(sub, [leased.receipt], requeue=True)

    [again] = service.pull(sub, wait_seconds=5)
    assert outcome.done == 1
    assert (again.id, again.delivery_count) == (message_id, 2)


def test_nack_without_requeue_drops_when_there_is_no_dead_letter(
    service: MessagingService, broker: Broker, fresh
) -> None:
    topic, sub = setup(service, fresh)
    publish_json(service, topic, ["a"])
    [leased] = service.pull(sub)

    assert service.nack(sub, [leased.receipt], requeue=False).done == 1
    assert service.pull(sub, wait_seconds=0.5) == []
    assert service.get_subscription(sub).depth == 0


def test_nack_without_requeue_dead_letters(service: MessagingService, fresh) -> None:
    topic, sub = setup(service, fresh, dead_letter=True)
    message = OutgoingMessage.json({"n": 1}, key=topic + ".x", headers={"a": "b", "n": 2})
    [message_id] = service.publish(topic, [message]).ids
    [leased] = service.pull(sub)

    service.nack(sub, [leased.receipt], requeue=False)

    [dead] = service.pull(sub + ".dead-letter", wait_seconds=5)
    assert (dead.id, dead.key, dict(dead.headers)) == (message_id, topic + ".x", {"a": "b", "n": 2})
    assert (dead.payload, dead.content_type) == (message.payload, message.content_type)
    assert dead.delivery_count == 1
    assert service.pull(sub) == []


def test_max_deliveries_moves_the_message_to_dead_letter(
    service: MessagingService, broker: Broker, fresh
) -> None:
    topic, sub = setup(service, fresh, max_deliveries=2, dead_letter=True)
    [message_id] = publish_json(service, topic, ["poison"])

    counts = []
    for _ in range(2):
        [leased] = broker.pull(sub, 1, 10, 30, False)
        counts.append(leased.delivery_count)
        service.nack(sub, [leased.receipt], requeue=True)

    assert counts == [1, 2]
    [dead] = service.pull(sub + ".dead-letter", wait_seconds=5)
    assert dead.id == message_id
    assert service.pull(sub, wait_seconds=0.2) == []


def test_max_deliveries_counts_ended_leases(
    service: MessagingService, broker: Broker, fresh
) -> None:
    topic, sub = setup(service, fresh, max_deliveries=1, dead_letter=True)
    [message_id] = publish_json(service, topic, ["slow"])
    broker.pull(sub, 1, 0, SHORT_LEASE, False)

    [dead] = service.pull(sub + ".dead-letter", wait_seconds=10)

    assert dead.id == message_id
    assert service.pull(sub) == []


def test_max_deliveries_without_dead_letter_drops(
    service: MessagingService, broker: Broker, fresh
) -> None:
    topic, sub = setup(service, fresh, max_deliveries=1)
    publish_json(service, topic, ["x"])
    [leased] = service.pull(sub)

    service.nack(sub, [leased.receipt], requeue=True)

    assert service.pull(sub, wait_seconds=0.5) == []


def test_extend_moves_the_end_of_the_lease(
    service: MessagingService, broker: Broker, fresh
) -> None:
    topic, sub = setup(service, fresh)
    publish_json(service, topic, ["a"])
    [leased] = broker.pull(sub, 1, 0, SHORT_LEASE, False)

    outcome = broker.extend(sub, [leased.receipt, "nope"], 30)

    assert (outcome.done, outcome.unknown) == (1, ["nope"])
    assert broker.pull(sub, 1, SHORT_LEASE * 4, 30, False) == []
    assert service.ack(sub, [leased.receipt]).done == 1


def test_extend_can_shorten_a_lease(service: MessagingService, broker: Broker, fresh) -> None:
    topic, sub = setup(service, fresh)
    publish_json(service, topic, ["a"])
    [leased] = service.pull(sub, lease_seconds=600)

    broker.extend(sub, [leased.receipt], SHORT_LEASE)

    [again] = broker.pull(sub, 1, 10, 30, False)
    assert again.delivery_count == 2


def test_auto_ack_delivers_once_without_receipt(
    service: MessagingService, broker: Broker, fresh
) -> None:
    topic, sub = setup(service, fresh)
    publish_json(service, topic, ["a"])

    [message] = service.pull(sub, auto_ack=True)

    assert message.receipt is None
    assert message.delivery_count == 1
    assert broker.pull(sub, 1, SHORT_LEASE * 2, 30, False) == []


def test_long_poll_wakes_when_a_message_arrives(service: MessagingService, fresh) -> None:
    topic, sub = setup(service, fresh)
    result: list[object] = []
    puller = threading.Thread(target=lambda: result.extend(service.pull(sub, wait_seconds=20)))
    started = time.monotonic()
    puller.start()

    publish_json(service, topic, ["wake"])
    puller.join(20)

    assert bodies(result) == ["wake"]  # type: ignore[arg-type]
    assert time.monotonic() - started < 20


def test_long_poll_returns_empty_when_nothing_arrives(service: MessagingService, fresh) -> None:
    _, sub = setup(service, fresh)

    started = time.monotonic()
    assert service.pull(sub, wait_seconds=0.3) == []
    assert time.monotonic() - started >= 0.3


def test_long_poll_returns_everything_ready_up_to_max(service: MessagingService, fresh) -> None:
    topic, sub = setup(service, fresh)
    publish_json(service, topic, list(range(4)))

    assert bodies(service.pull(sub, max_messages=3, wait_seconds=5)) == [0, 1, 2]


def test_unknown_subscription_is_reported(service: MessagingService, fresh) -> None:
    missing = fresh("missing")
    for call in (
        lambda: service.pull(missing),
        lambda: service.ack(missing, ["r"]),
        lambda: service.nack(missing, ["r"]),
        lambda: service.extend(missing, ["r"]),
        lambda: service.get_subscription(missing),
        lambda: service.delete_subscription(missing),
    ):
        try:
            call()
        except SubscriptionNotFound as error:
            assert error.name == missing
        else:
            raise AssertionError("expected SubscriptionNotFound")
