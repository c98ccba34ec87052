from __future__ import annotations

import json
from collections.abc import Sequence

from messaging.model import Message, OutgoingMessage
from messaging.service import MessagingService


def publish_json(
    service: MessagingService, topic: str, values: Sequence[object], key: str | None = None
) -> list[str]:
    result = service.publish(topic, [OutgoingMessage.json(v, key=key) for v in values])
    return result.ids


def bodies(messages: Sequence[Message]) -> list[object]:
    return [json.loads(m.payload) for m in messages]


def drain(service: MessagingService, name: str, expected: int, wait: float = 5) -> list[Message]:
    """Pull and ack until ``expected`` messages came, or a pull waited ``wait`` in vain."""
    got: list[Message] = []
    while len(got) < expected:
        batch = service.pull(name, max_messages=expected - len(got), wait_seconds=wait)
        if not batch:
            break
        service.ack(name, [m.receipt for m in batch if m.receipt])
        got.extend(batch)
    return got
