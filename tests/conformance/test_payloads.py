"""Payload bytes, content types, headers, ids and timestamps survive the broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from messaging.model import OutgoingMessage
from messaging.service import MessagingService

CASES = [
    OutgoingMessage.json({"a": [1, 2.5, None, True], "é": "ü"}),
    OutgoingMessage.text("héllo\nworld"),
    OutgoingMessage(bytes(range(256)), "application/octet-stream"),
    OutgoingMessage(b"\xff\xfe not utf-8", "text/plain"),
    OutgoingMessage(b"", "application/x-empty"),
]


@pytest.mark.parametrize("outgoing", CASES, ids=lambda m: m.content_type)
def test_payload_and_content_type_survive(
    service: MessagingService, fresh, outgoing: OutgoingMessage
) -> None:
    topic, sub = fresh("t"), fresh("s")
    service.create_subscription(sub, topic)
    service.publish(topic, [outgoing])

    [message] = service.pull(sub)

    assert (message.payload, message.content_type) == (outgoing.payload, outgoing.content_type)


def test_id_key_headers_and_publish_time_survive(service: MessagingService, fresh) -> None:
    topic, sub = fresh("t"), fresh("s")
    service.create_subscription(sub, topic, pattern="orders.#")
    headers = {"s": "text", "i": -(2**40), "f": 1.5, "yes": True, "no": False}
    before = datetime.now(UTC)
    service.publish(
        topic, [OutgoingMessage.text("x", key="orders.eu.created", headers=headers, id="my-id")]
    )

    [message] = service.pull(sub)

    assert (message.id, message.key, message.topic) == ("my-id", "orders.eu.created", topic)
    assert dict(message.headers) == headers
    assert {k: type(v) for k, v in message.headers.items()} == {
        k: type(v) for k, v in headers.items()
    }
    assert message.published_at.tzinfo is not None
    assert before - timedelta(seconds=1) <= message.published_at <= datetime.now(UTC)


def test_the_longest_ids_and_header_names_survive(service: MessagingService, fresh) -> None:
    topic, sub = fresh("t"), fresh("s")
    service.create_subscription(sub, topic)
    long_id = "é😀" * 64  # 128 characters, 384 bytes in UTF-8
    headers = {"n" * 255: "v", "ü" * 127: "w"}
    service.publish(topic, [OutgoingMessage.text("x", id=long_id, headers=headers)])

    [message] = service.pull(sub)

    assert (message.id, dict(message.headers)) == (long_id, headers)
