"""The in-memory broker: the whole contract, in one process, with no dependencies.

State belongs to the instance. One lock guards it; each subscription has a condition on
that lock, so a long poll wakes as soon as a message is published, nacked or its lease
ends. Leases end on time even when nobody calls: a daemon thread (the lease clock) waits
for the earliest deadline.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from messaging.errors import SubscriptionConflict, SubscriptionNotFound
from messaging.model import (
    Envelope,
    Message,
    ReceiptOutcome,
    SubscriptionConfig,
    SubscriptionInfo,
)
from messaging.port import Broker
from messaging.routing import topic_matches


@dataclass
class _Stored:
    topic: str
    envelope: Envelope
    deliveries: int = 0


@dataclass
class _Lease:
    stored: _Stored
    deadline: float


@dataclass
class _Subscription:
    config: SubscriptionConfig
    changed: threading.Condition
    ready: deque[_Stored] = field(default_factory=deque)
    leases: dict[str, _Lease] = field(default_factory=dict)


class MemoryBroker(Broker):
    kind = "memory"

    def __init__(self, url: str = "memory://") -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[str, _Subscription] = {}
        self._tie = itertools.count()
        self._deadlines: list[tuple[float, int, str, str]] = []
        """Heap of (deadline, tie-breaker, subscription, receipt); stale entries skipped."""
        self._lease_clock = threading.Condition(self._lock)
        self._closed = False
        threading.Thread(target=self._run_lease_clock, name="memory-leases", daemon=True).start()

    def _run_lease_clock(self) -> None:
        with self._lock:
            while not self._closed:
                now = time.monotonic()
                self._expire_leases(now)
                timeout = self._deadlines[0][0] - now if self._deadlines else None
                self._lease_clock.wait(timeout)

    def publish(self, topic: str, envelopes: Sequence[Envelope]) -> list[str]:
        unroutable = []
        with self._lock:
            bound = [s for s in self._subscriptions.values() if s.config.topic == topic]
            for envelope in envelopes:
                targets = [s for s in bound if topic_matches(s.config.pattern or "", envelope.key)]
                if not targets:
                    unroutable.append(envelope.id)
                for subscription in targets:
                    subscription.ready.append(_Stored(topic, envelope))
            for subscription in bound:
                subscription.changed.notify_all()
        return unroutable

    def declare_subscription(self, config: SubscriptionConfig) -> bool:
        with self._lock:
            existing = self._subscriptions.get(config.name)
            if existing is not None:
                if existing.config != config:
                    raise SubscriptionConflict(
                        f"subscription {config.name!r} exists with another configuration"
                    )
                return False
            if config.dead_letter:
                dead = self._subscriptions.get(config.dead_letter_name)
                dead_config = SubscriptionConfig(config.dead_letter_name, None, None)
                if dead is not None and dead.config != dead_config:
                    raise SubscriptionConflict(
                        f"{config.dead_letter_name!r} exists and is not a dead-letter subscription"
                    )
                if dead is None:
                    self._add(dead_config)
            self._add(config)
            return True

    def _add(self, config: SubscriptionConfig) -> None:
        self._subscriptions[config.name] = _Subscription(config, threading.Condition(self._lock))

    def get_subscription(self, name: str) -> SubscriptionInfo:
        with self._lock:
            subscription = self._require(name)
            self._expire_leases(time.monotonic())
            return SubscriptionInfo(subscription.config, len(subscription.ready))

    def list_subscriptions(self) -> list[SubscriptionInfo]:
        with self._lock:
            self._expire_leases(time.monotonic())
            return [
                SubscriptionInfo(s.config, len(s.ready))
                for _, s in sorted(self._subscriptions.items())
            ]

    def delete_subscription(self, name: str) -> None:
        with self._lock:
            subscription = self._require(name)
            del self._subscriptions[name]
            subscription.changed.notify_all()

    def pull(
        self,
        name: str,
        max_messages: int,
        wait_seconds: float,
        lease_seconds: float,
        auto_ack: bool,
    ) -> list[Message]:
        give_up_at = time.monotonic() + wait_seconds
        with self._lock:
            while True:
                subscription = self._require(name)
                now = time.monotonic()
                self._expire_leases(now)
                delivered = self._deliver(subscription, max_messages, now + lease_seconds, auto_ack)
                if delivered or now >= give_up_at:
                    return delivered
                subscription.changed.wait(give_up_at - now)

    def _deliver(
        self, subscription: _Subscription, limit: int, deadline: float, auto_ack: bool
    ) -> list[Message]:
        delivered: list[Message] = []
        while subscription.ready and len(delivered) < limit:
            stored = subscription.ready.popleft()
            stored.deliveries += 1
            receipt = None
            if not auto_ack:
                receipt = uuid.uuid4().hex
                subscription.leases[receipt] = _Lease(stored, deadline)
                self._schedule(subscription, receipt, deadline)
            envelope = stored.envelope
            delivered.append(
                Message(
                    id=envelope.id,
                    topic=stored.topic,
                    key=envelope.key,
                    headers=envelope.headers,
                    content_type=envelope.content_type,
                    payload=envelope.payload,
                    published_at=envelope.published_at,
                    delivery_count=stored.deliveries,
                    receipt=receipt,
                )
            )
        return delivered

    def _schedule(self, subscription: _Subscription, receipt: str, deadline: float) -> None:
        entry = (deadline, next(self._tie), subscription.config.name, receipt)
        heapq.heappush(self._deadlines, entry)
        if self._deadlines[0] is entry:
            self._lease_clock.notify()

    def _expire_leases(self, now: float) -> None:
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            deadline, _, name, receipt = heapq.heappop(heap)
            subscription = self._subscriptions.get(name)
            lease = subscription.leases.get(receipt) if subscription else None
            if subscription and lease and lease.deadline == deadline:
                del subscription.leases[receipt]
                self._give_back(subscription, lease.stored, requeue=True)

    def _give_back(self, subscription: _Subscription, stored: _Stored, requeue: bool) -> None:
        limit = subscription.config.max_deliveries
        if requeue and not (limit and stored.deliveries >= limit):
            subscription.ready.appendleft(stored)
            subscription.changed.notify_all()
            return
        if subscription.config.dead_letter:
            dead = self._subscriptions.get(subscription.config.dead_letter_name)
            if dead is not None:
                dead.ready.append(_Stored(stored.topic, stored.envelope))
                dead.changed.notify_all()

    def ack(self, name: str, receipts: Sequence[str]) -> ReceiptOutcome:
        return self._settle(name, receipts, lambda subscription, lease: None)

    def nack(self, name: str, receipts: Sequence[str], requeue: bool) -> ReceiptOutcome:
        return self._settle(
            name,
            receipts,
            lambda subscription, lease: self._give_back(subscription, lease.stored, requeue),
        )

    def _settle(
        self,
        name: str,
        receipts: Sequence[str],
        then: Callable[[_Subscription, _Lease], None],
    ) -> ReceiptOutcome:
        unknown = []
        with self._lock:
            subscription = self._require(name)
            self._expire_leases(time.monotonic())
            for receipt in receipts:
                lease = subscription.leases.pop(receipt, None)
                if lease is None:
                    unknown.append(receipt)
                else:
                    then(subscription, lease)
        return ReceiptOutcome(len(receipts) - len(unknown), unknown)

    def extend(self, name: str, receipts: Sequence[str], lease_seconds: float) -> ReceiptOutcome:
        unknown = []
        with self._lock:
            subscription = self._require(name)
            now = time.monotonic()
            self._expire_leases(now)
            for receipt in receipts:
                lease = subscription.leases.get(receipt)
                if lease is None:
                    unknown.append(receipt)
                    continue
                lease.deadline = now + lease_seconds
                self._schedule(subscription, receipt, lease.deadline)
        return ReceiptOutcome(len(receipts) - len(unknown), unknown)

    def check_health(self) -> None:
        return None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._deadlines.clear()
            self._lease_clock.notify()
            for subscription in self._subscriptions.values():
                leases = sorted(subscription.leases.values(), key=lambda lease: -lease.deadline)
                subscription.leases.clear()
                for lease in leases:
                    self._give_back(subscription, lease.stored, requeue=True)

    def _require(self, name: str) -> _Subscription:
        subscription = self._subscriptions.get(name)
        if subscription is None:
            raise SubscriptionNotFound(name)
        return subscription
