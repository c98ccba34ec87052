"""Plain kombu and pika programs and the gateway read each other's messages."""

from __future__ import annotations

import json

import kombu
import pytest

from messaging.model import OutgoingMessage
from messaging.payloads import message_to_json


def kombu_get(url: str, queue: str) -> kombu.Message:
    with kombu.Connection(url, connect_timeout=2) as connection:
        bound = kombu.Queue(queue, no_declare=True)(connection.default_channel)
        message = bound.get(no_ack=True)
        assert message is not None
        return message


def test_kombu_consumer_reads_what_the_gateway_published(
    backend_url: str, open_service, fresh
) -> None:
    service = open_service(backend_url)
    topic, sub = fresh("t"), fresh("s")
    service.create_subscription(sub, topic)
    service.publish(
        topic, [OutgoingMessage.json({"n": 1}, id="m-1", key="a.b", headers={"h": "v"})]
    )

    message = kombu_get(backend_url, sub)

    assert json.loads(message.body) == {"n": 1}
    assert message.content_type == "application/json"
    assert message.properties["message_id"] == "m-1"
    assert message.headers["h"] == "v"
    assert message.delivery_info["routing_key"] == "a.b"


SENT = [
    ({"n": 1}, {"serializer": "json"}, "body", {"n": 1}),
    ("héllo", {"content_type": "text/plain", "content_encoding": "utf-8"}, "text", "héllo"),
    (
        b"\x00\xff",
        {"content_type": "application/octet-stream", "content_encoding": "binary"},
        "data_base64",
        "AP8=",
    ),
]


@pytest.mark.parametrize(
    ("body", "options", "field", "expected"), SENT, ids=["json", "text", "bytes"]
)
def test_gateway_pulls_what_a_kombu_producer_published(
    backend_url: str, open_service, fresh, body, options, field: str, expected
) -> None:
    service = open_service(backend_url)
    topic, sub = fresh("t"), fresh("s")
    service.create_subscription(sub, topic, pattern="orders.#")
    with kombu.Connection(backend_url, connect_timeout=2) as connection:
        exchange = kombu.Exchange(topic, "topic", durable=True)
        producer = connection.Producer(exchange=exchange)
        producer.publish(body, routing_key="orders", headers={"from": "kombu"}, **options)
        producer.publish(body, routing_key="other.key", **options)

    [message] = service.pull(sub, wait_seconds=5)

    shown = message_to_json(message)
    assert shown[field] == expected
    assert (shown["topic"], shown["key"], shown["headers"]) == (topic, "orders", {"from": "kombu"})
    assert shown["delivery_count"] == 1
    assert service.ack(sub, [message.receipt]).done == 1
    assert service.pull(sub) == []


def test_gateway_pulls_what_pika_published(open_service, fresh) -> None:
    import pika

    from tests.backends import reachable_url

    url = reachable_url("rabbitmq")
    service = open_service(url)
    topic, sub = fresh("t"), fresh("s")
    service.create_subscription(sub, topic)
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.basic_publish(
            exchange=topic,
            routing_key="k",
            body=b'{"from": "pika"}',
            properties=pika.BasicProperties(content_type="application/json", message_id="p-1"),
        )
    finally:
        connection.close()

    [message] = service.pull(sub, wait_seconds=5)

    assert message_to_json(message)["body"] == {"from": "pika"}
    assert (message.id, message.key) == ("p-1", "k")
