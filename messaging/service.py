"""The service: what the HTTP layer and Python users call.

It validates every input once (names, keys, headers, ids, sizes, ranges) and fills in
defaults, so adapters receive only well-formed requests.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .errors import InvalidInput
from .model import (
    Envelope,
    Message,
    OutgoingMessage,
    PublishResult,
    ReceiptOutcome,
    SubscriptionConfig,
    SubscriptionInfo,
    dead_letter_name,
)
from .port import Broker

NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}")
RESERVED_NAME_PREFIX = "amq."
RESERVED_HEADER_PREFIX = "x-messaging-"
MAX_KEY_BYTES = 255
MAX_ID_CHARS = 128
MAX_HEADER_NAME_CHARS = 255
MAX_BATCH = 1000
MAX_PULL = 1000
MAX_WAIT_SECONDS = 20
MAX_LEASE_SECONDS = 43200
INT64 = 2**63


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        return "must match ^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$"
    if name.startswith(RESERVED_NAME_PREFIX):
        return f"names starting with {RESERVED_NAME_PREFIX!r} are reserved by AMQP brokers"
    return None


def key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not key:
        return "must be a non-empty string"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "must be valid Unicode"
    if size > MAX_KEY_BYTES:
        return f"must be at most {MAX_KEY_BYTES} bytes in UTF-8"
    return None


def id_problem(message_id: object) -> str | None:
    if not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_ID_CHARS:
        return f"must be a string of 1 to {MAX_ID_CHARS} characters"
    return None


def _header_problem(headers: object) -> str | None:
    if not isinstance(headers, Mapping):
        return "must be an object"
    for name, value in headers.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_HEADER_NAME_CHARS:
            return f"names must be strings of 1 to {MAX_HEADER_NAME_CHARS} characters"
        if len(name.encode("utf-8", "surrogatepass")) > MAX_HEADER_NAME_CHARS:
            return f"{name[:20]!r}...: names must be at most {MAX_HEADER_NAME_CHARS} bytes in UTF-8"
        if name.lower().startswith(RESERVED_HEADER_PREFIX):
            return f"{name!r}: the prefix {RESERVED_HEADER_PREFIX!r} is reserved"
        if isinstance(value, (bool, str)):
            continue
        if isinstance(value, int) and -INT64 <= value < INT64:
            continue
        if isinstance(value, float) and math.isfinite(value):
            continue
        return f"{name!r}: values must be strings, booleans, 64-bit integers or finite numbers"
    return None


def _number(
    value: object, field: str, low: float, high: float, errors: dict[str, str], integer: bool
) -> Any:
    """``value`` if it is a number in range (an integral float counts as an integer)."""
    if isinstance(value, float) and integer and value.is_integer():
        value = int(value)
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:  # type: ignore[operator]
        kind = "an integer" if integer else "a number"
        errors[field] = f"must be {kind} from {low:g} to {high:g}"
    return value


def _require_name(name: object, field: str = "name") -> str:
    problem = _name_problem(name)
    if problem:
        raise InvalidInput({field: problem})
    assert isinstance(name, str)
    return name


def _require_receipts(receipts: object) -> list[str]:
    if (
        not isinstance(receipts, Sequence)
        or isinstance(receipts, str)
        or not 1 <= len(receipts) <= MAX_PULL
        or not all(isinstance(r, str) for r in receipts)
    ):
        raise InvalidInput({"receipts": f"must be a list of 1 to {MAX_PULL} strings"})
    return list(receipts)


def _raise_if(errors: Mapping[str, str]) -> None:
    if errors:
        raise InvalidInput(errors)


class MessagingService:
    def __init__(
        self,
        broker: Broker,
        *,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.broker = broker
        self._new_id = new_id
        self._now = now

    def publish(self, topic: str, messages: Sequence[OutgoingMessage]) -> PublishResult:
        errors: dict[str, str] = {}
        if problem := _name_problem(topic):
            errors["topic"] = problem
        if not 1 <= len(messages) <= MAX_BATCH:
            errors["messages"] = f"must hold 1 to {MAX_BATCH} messages"
        envelopes = []
        published_at = self._now()
        for index, message in enumerate(messages):
            where = f"messages[{index}]." if len(messages) > 1 else ""
            key = topic if message.key is None else message.key
            if problem := key_problem(key):
                errors[where + "key"] = problem
            if problem := _header_problem(message.headers):
                errors[where + "headers"] = problem
            message_id = self._new_id() if message.id is None else message.id
            if problem := id_problem(message_id):
                errors[where + "id"] = problem
            if not isinstance(message.payload, bytes):
                errors[where + "payload"] = "must be bytes"
            if not isinstance(message.content_type, str) or not message.content_type.strip():
                errors[where + "content_type"] = "must be a non-empty string"
            if not errors:
                envelopes.append(
                    Envelope(
                        id=message_id,
                        key=key,
                        headers=dict(message.headers),
                        content_type=message.content_type,
                        payload=message.payload,
                        published_at=published_at,
                    )
                )
        _raise_if(errors)
        unroutable = self.broker.publish(topic, envelopes)
        return PublishResult(ids=[e.id for e in envelopes], unroutable=unroutable)

    def create_subscription(
        self,
        name: str,
        topic: str,
        pattern: str = "#",
        max_deliveries: int = 0,
        dead_letter: bool = False,
    ) -> tuple[SubscriptionInfo, bool]:
        """Declare the subscription; returns its state and whether it was created."""
        errors: dict[str, str] = {}
        if problem := _name_problem(name):
            errors["name"] = problem
        elif dead_letter and _name_problem(dead_letter_name(name)):
            errors["name"] = "too long to have a dead-letter subscription"
        if problem := _name_problem(topic):
            errors["topic"] = problem
        if problem := key_problem(pattern):
            errors["pattern"] = problem
        max_deliveries = _number(max_deliveries, "max_deliveries", 0, 1_000_000, errors, True)
        if not isinstance(dead_letter, bool):
            errors["dead_letter"] = "must be true or false"
        _raise_if(errors)
        config = SubscriptionConfig(name, topic, pattern, max_deliveries, dead_letter)
        created = self.broker.declare_subscription(config)
        return self.broker.get_subscription(name), created

    def get_subscription(self, name: str) -> SubscriptionInfo:
        return self.broker.get_subscription(_require_name(name))

    def list_subscriptions(self) -> list[SubscriptionInfo]:
        return self.broker.list_subscriptions()

    def delete_subscription(self, name: str) -> None:
        self.broker.delete_subscription(_require_name(name))

    def pull(
        self,
        name: str,
        max_messages: int = 10,
        wait_seconds: float = 0,
        lease_seconds: float = 30,
        auto_ack: bool = False,
    ) -> list[Message]:
        errors: dict[str, str] = {}
        if problem := _name_problem(name):
            errors["name"] = problem
        max_messages = _number(max_messages, "max_messages", 1, MAX_PULL, errors, integer=True)
        _number(wait_seconds, "wait_seconds", 0, MAX_WAIT_SECONDS, errors, integer=False)
        _number(lease_seconds, "lease_seconds", 1, MAX_LEASE_SECONDS, errors, integer=False)
        if not isinstance(auto_ack, bool):
            errors["auto_ack"] = "must be true or false"
        _raise_if(errors)
        return self.broker.pull(name, max_messages, wait_seconds, lease_seconds, auto_ack)

    def ack(self, name: str, receipts: Sequence[str]) -> ReceiptOutcome:
        return self.broker.ack(_require_name(name), _require_receipts(receipts))

    def nack(self, name: str, receipts: Sequence[str], requeue: bool = True) -> ReceiptOutcome:
        checked = _require_receipts(receipts)
        if not isinstance(requeue, bool):
            raise InvalidInput({"requeue": "must be true or false"})
        return self.broker.nack(_require_name(name), checked, requeue)

    def extend(
        self, name: str, receipts: Sequence[str], lease_seconds: float = 30
    ) -> ReceiptOutcome:
        errors: dict[str, str] = {}
        _number(lease_seconds, "lease_seconds", 1, MAX_LEASE_SECONDS, errors, integer=False)
        _raise_if(errors)
        return self.broker.extend(_require_name(name), _require_receipts(receipts), lease_seconds)

    def health(self) -> str:
        """The broker's kind; raises ``BrokerUnavailable`` when it cannot be reached."""
        self.broker.check_health()
        return self.broker.kind

    def close(self) -> None:
        self.broker.close()
