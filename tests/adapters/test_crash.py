"""A gateway process killed while it holds leases loses nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from messaging.model import OutgoingMessage

HOLDER = textwrap.dedent(
    """
    import os, sys
    from messaging.registry import create_broker
    url, sub, lease = sys.argv[1], sys.argv[2], float(sys.argv[3])
    broker = create_broker(url)
    taken = broker.pull(sub, 10, 5, lease, False)
    print(len(taken), flush=True)
    os._exit(1)
    """
)


def test_leases_of_a_killed_process_come_back(backend_url: str, open_service, fresh) -> None:
    service = open_service(backend_url)
    topic, sub = fresh("t"), fresh("s")
    service.create_subscription(sub, topic)
    ids = service.publish(topic, [OutgoingMessage.text(str(n)) for n in range(3)]).ids
    # RabbitMQ requeues a dead connection's deliveries at once: a long lease shows it.
    # On Redis they come back when the lease ends.
    lease = 60.0 if backend_url.startswith("amqp") else 1.0

    holder = subprocess.run(
        [sys.executable, "-c", HOLDER, backend_url, sub, str(lease)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    killed_at = time.monotonic()

    assert holder.stdout.strip() == "3", holder.stderr
    back = []
    while len(back) < 3 and (batch := service.pull(sub, max_messages=3, wait_seconds=10)):
        back.extend(batch)
    assert sorted(m.id for m in back) == sorted(ids)
    assert {m.delivery_count for m in back} == {2}
    assert time.monotonic() - killed_at < min(lease, 1.0) + 2
