"""Many threads on one broker: nothing lost, nothing delivered twice while leased."""

from __future__ import annotations

import threading
from collections import Counter

from messaging.model import OutgoingMessage
from messaging.service import MessagingService

THREADS = 8
PER_THREAD = 50


def test_threads_publishing_and_pulling_at_once(service: MessagingService, fresh) -> None:
    topic, sub = fresh("t"), fresh("s")
    service.create_subscription(sub, topic)
    total = THREADS * PER_THREAD
    delivered: Counter[str] = Counter()
    lock = threading.Lock()
    done = threading.Event()
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for start in range(0, PER_THREAD, 10):
                service.publish(
                    topic,
                    [
                        OutgoingMessage.text(f"{worker}-{n}", id=f"{worker}-{n}")
                        for n in range(start, start + 10)
                    ],
                )
                pull_some()
            while not done.is_set():
                pull_some(wait=0.5)
        except BaseException as error:
            errors.append(error)
            done.set()

    def pull_some(wait: float = 0) -> None:
        batch = service.pull(sub, max_messages=7, wait_seconds=wait, lease_seconds=600)
        with lock:
            delivered.update(m.id for m in batch)
            if len(delivered) >= total:
                done.set()
        if batch:
            assert service.ack(sub, [m.receipt for m in batch if m.receipt]).unknown == []

    workers = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for worker in workers:
        worker.start()
    done.wait(60)
    done.set()
    for worker in workers:
        worker.join(30)

    assert errors == []
    assert len(delivered) == total
    assert [i for i, count in delivered.items() if count > 1] == []
