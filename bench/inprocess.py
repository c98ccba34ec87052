"""The adapters in this process: the gateway's cost without HTTP."""

from __future__ import annotations

import time
import uuid

from messaging.model import OutgoingMessage
from messaging.registry import create_broker
from messaging.service import MessagingService

from .raw import PAYLOAD


def publish_and_pull(url: str, count: int, batch: int, pull_batch: int) -> tuple[float, float]:
    """Messages/s: batch publish, then pull + ack."""
    service = MessagingService(create_broker(url))
    name = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        service.create_subscription(name, name)
        messages = [OutgoingMessage(PAYLOAD, "application/json") for _ in range(batch)]
        started = time.perf_counter()
        for start in range(0, count, batch):
            service.publish(name, messages[: min(batch, count - start)])
        publish_rate = count / (time.perf_counter() - started)
        started = time.perf_counter()
        done = 0
        while done < count:
            pulled = service.pull(name, max_messages=pull_batch, wait_seconds=1)
            service.ack(name, [m.receipt for m in pulled if m.receipt])
            done += len(pulled)
        pull_rate = count / (time.perf_counter() - started)
        service.delete_subscription(name)
        return publish_rate, pull_rate
    finally:
        service.close()
