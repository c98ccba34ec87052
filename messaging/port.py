"""The port: the one interface every broker adapter implements.

Contract (the conformance suite in ``tests/conformance`` holds every adapter to it):

* **Thread safety.** Every method may be called from any number of threads at once.
* **Topics and subscriptions.** A topic needs no declaration. A subscription is durable,
  bound to one topic with one AMQP topic pattern (``*`` = exactly one word, ``#`` = zero
  or more words). ``publish`` copies each message into every subscription that exists at
  that moment and whose pattern matches the message's key (fan-out); messages that match
  none are reported unroutable and dropped. Clients pulling one subscription compete for
  its messages (work queue).
* **Ordering.** Messages published by one thread to one subscription are first delivered
  in publish order. A message delivered again (lease ended, nack) may come back ahead of
  or behind newer ones.
* **Durability.** ``publish`` returns only once the broker has stored every message.
* **Leases.** ``pull`` without ``auto_ack`` leases each message for ``lease_seconds`` and
  gives it a receipt. Until the lease ends, no other pull gets the message. ``ack`` deletes
  it; ``nack(requeue=True)`` makes it deliverable at once; ``extend`` ends the lease
  ``lease_seconds`` from now. A lease that ends without ack makes the message deliverable
  again with ``delivery_count`` one higher. With ``auto_ack`` the message is deleted as it
  is delivered (at most once).
* **Dead letters.** A message nacked without requeue, or whose next delivery would exceed
  ``max_deliveries`` (when > 0), moves to the subscription ``{name}.dead-letter`` if the
  subscription was declared with ``dead_letter``, keeping id, payload, key and headers;
  otherwise it is dropped.
* **Receipts** belong to the broker instance (the process) that issued them. Anywhere else
  they are unknown, and the message returns when its lease ends. Ack, nack and extend
  report, never raise, for receipts they do not hold. Every call naming a subscription
  that does not exist raises ``SubscriptionNotFound``.
* **Failures.** A broker that cannot be reached raises ``BrokerUnavailable`` within a few
  seconds, never hangs; the adapter recovers by itself once the broker is back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from .model import Envelope, Message, ReceiptOutcome, SubscriptionConfig, SubscriptionInfo


class Broker(ABC):
    """A message broker behind the gateway. See the module docstring for the contract."""

    kind: str
    """What the health check names: ``memory``, ``redis`` or ``rabbitmq``."""

    @abstractmethod
    def publish(self, topic: str, envelopes: Sequence[Envelope]) -> list[str]:
        """Store ``envelopes`` in every matching subscription; return the unroutable ids."""

    @abstractmethod
    def declare_subscription(self, config: SubscriptionConfig) -> bool:
        """Create the subscription (and its dead-letter one); False if it already existed.

        Raises ``SubscriptionConflict`` if it exists with another configuration.
        """

    @abstractmethod
    def get_subscription(self, name: str) -> SubscriptionInfo:
        """Raises ``SubscriptionNotFound``."""

    @abstractmethod
    def list_subscriptions(self) -> list[SubscriptionInfo]:
        """Every subscription, sorted by name."""

    @abstractmethod
    def delete_subscription(self, name: str) -> None:
        """Delete the subscription and its messages; its dead-letter subscription stays.

        Raises ``SubscriptionNotFound``.
        """

    @abstractmethod
    def pull(
        self,
        name: str,
        max_messages: int,
        wait_seconds: float,
        lease_seconds: float,
        auto_ack: bool,
    ) -> list[Message]:
        """Up to ``max_messages`` messages; if none is ready, wait up to ``wait_seconds``
        for the first and return as soon as it arrives. Raises ``SubscriptionNotFound``."""

    @abstractmethod
    def ack(self, name: str, receipts: Sequence[str]) -> ReceiptOutcome:
        """Delete the leased messages."""

    @abstractmethod
    def nack(self, name: str, receipts: Sequence[str], requeue: bool) -> ReceiptOutcome:
        """Give the leased messages back: deliverable at once, or dead-lettered."""

    @abstractmethod
    def extend(self, name: str, receipts: Sequence[str], lease_seconds: float) -> ReceiptOutcome:
        """End each lease ``lease_seconds`` from now."""

    @abstractmethod
    def check_health(self) -> None:
        """Return if the broker answers; raise ``BrokerUnavailable`` otherwise."""

    @abstractmethod
    def close(self) -> None:
        """Give every leased message back (deliverable at once) and release connections."""
