"""Baselines: the raw clients doing the same work by hand."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pika
import redis

PAYLOAD = b'{"order": 1234, "note": "' + b"x" * 64 + b'"}'


def _pika_channel(url: str) -> tuple[Any, Any, str]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    exchange = queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    channel.exchange_declare(exchange, "topic", durable=True)
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(queue, exchange, "#")
    return connection, channel, queue


def pika_publish_and_consume(url: str, count: int, batch: int) -> tuple[float, float]:
    """Messages/s: publishing with confirms per batch, then consuming with acks."""
    connection, channel, queue = _pika_channel(url)
    try:
        confirmed = [0]
        impl = channel._impl  # the async channel: confirms counted, not awaited one by one

        def on_confirm(frame: Any) -> None:
            method = frame.method
            if method.NAME == "Basic.Nack":
                raise RuntimeError("a publish was refused")
            confirmed[0] = method.delivery_tag if method.multiple else confirmed[0] + 1

        impl.confirm_delivery(ack_nack_callback=on_confirm)
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=2)
        started = time.perf_counter()
        sent = 0
        while sent < count:
            for _ in range(min(batch, count - sent)):
                impl.basic_publish(queue, "k", PAYLOAD, properties)
                sent += 1
            while confirmed[0] < sent:
                connection.process_data_events(time_limit=0.001)
        publish_rate = count / (time.perf_counter() - started)

        received = [0]
        channel.basic_qos(prefetch_count=100)

        def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            received[0] += 1
            ch.basic_ack(method.delivery_tag)
            if received[0] >= count:
                ch.stop_consuming()

        started = time.perf_counter()
        channel.basic_consume(queue, on_message)
        channel.start_consuming()
        consume_rate = count / (time.perf_counter() - started)
        channel.queue_delete(queue)
        channel.exchange_delete(queue)
        return publish_rate, consume_rate
    finally:
        connection.close()


def redis_push_and_pop(url: str, count: int, batch: int, pop_batch: int) -> tuple[float, float]:
    """Messages/s: pipelined LPUSH, then pipelined RPOP."""
    client = redis.Redis.from_url(url)
    key = f"bench-raw-{uuid.uuid4().hex[:8]}"
    try:
        started = time.perf_counter()
        for start in range(0, count, batch):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(batch, count - start)):
                pipe.lpush(key, PAYLOAD)
            pipe.execute()
        push_rate = count / (time.perf_counter() - started)
        started = time.perf_counter()
        popped = 0
        while popped < count:
            pipe = client.pipeline(transaction=False)
            for _ in range(pop_batch):
                pipe.rpop(key)
            popped += sum(1 for item in pipe.execute() if item is not None)
        pop_rate = count / (time.perf_counter() - started)
        return push_rate, pop_rate
    finally:
        client.delete(key)
        client.close()
