"""What the RabbitMQ and Redis adapters share: the kombu connection, the message layout on
the broker, the subscription catalog's records, receipts and error translation.

Messages are stored the way kombu stores them, so plain kombu (or pika) programs can
publish to a topic and read a subscription: the payload as the body, ``content_type``,
``message_id``, ``timestamp`` and the routing key as AMQP properties, and the user's
headers as headers. The gateway adds one header of its own, ``x-messaging-published-at``
(milliseconds since the epoch).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import kombu

from messaging.errors import BrokerUnavailable
from messaging.model import (
    BINARY_CONTENT_TYPE,
    Envelope,
    HeaderValue,
    Message,
    SubscriptionConfig,
)
from messaging.port import Broker

PUBLISHED_AT_HEADER = "x-messaging-published-at"
DELIVERY_COUNT_HEADER = "x-delivery-count"
"""Deliveries that ended without ack; RabbitMQ's quorum queues keep it under this name."""
BROKER_HEADERS = frozenset({DELIVERY_COUNT_HEADER, "x-death", "compression"})
BROKER_HEADER_PREFIXES = ("x-messaging-", "x-first-death-", "x-last-death-")
CONNECT_TIMEOUT_SECONDS = 2.0
"""How long a call waits to connect before BrokerUnavailable."""
IO_TIMEOUT_SECONDS = 3.0
"""How long a call waits for a connected broker that stopped answering."""


def broker_headers(envelope: Envelope) -> dict[str, HeaderValue]:
    headers = dict(envelope.headers)
    headers[PUBLISHED_AT_HEADER] = int(envelope.published_at.timestamp() * 1000)
    return headers


def user_headers(headers: Mapping[str, Any] | None) -> dict[str, HeaderValue]:
    """The headers a user sees: the broker's and the gateway's own removed, and values
    other programs set that JSON cannot carry (tables, bytes, dates) made strings."""
    shown: dict[str, HeaderValue] = {}
    for name, value in (headers or {}).items():
        if name in BROKER_HEADERS or name.startswith(BROKER_HEADER_PREFIXES):
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        shown[name] = value if isinstance(value, str | int | float | bool) else str(value)
    return shown


def published_at(headers: Mapping[str, Any] | None, timestamp: Any) -> datetime:
    millis = (headers or {}).get(PUBLISHED_AT_HEADER)
    if isinstance(millis, int) and not isinstance(millis, bool):
        return datetime.fromtimestamp(millis / 1000, UTC)
    if isinstance(timestamp, datetime):
        return timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        return datetime.fromtimestamp(timestamp, UTC)
    return datetime.now(UTC)


def delivered_message(
    *,
    topic: str,
    key: str,
    headers: Mapping[str, Any] | None,
    content_type: str | None,
    body: bytes | str,
    message_id: str | None,
    timestamp: Any,
    delivery_count: int,
    receipt: str | None,
) -> Message:
    """A delivered message, from whatever a kombu, pika or gateway publisher put there."""
    payload = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if not message_id:  # another program's message: an id that is the same on redelivery
        digest = hashlib.sha256(
            json.dumps([topic, key, str(timestamp)]).encode() + payload
        ).hexdigest()
        message_id = f"sha256-{digest[:32]}"
    return Message(
        id=message_id,
        topic=topic,
        key=key,
        headers=user_headers(headers),
        content_type=content_type or BINARY_CONTENT_TYPE,
        payload=payload,
        published_at=published_at(headers, timestamp),
        delivery_count=delivery_count,
        receipt=receipt,
    )


def config_to_json(config: SubscriptionConfig) -> str:
    return json.dumps(
        {
            "topic": config.topic,
            "pattern": config.pattern,
            "max_deliveries": config.max_deliveries,
            "dead_letter": config.dead_letter,
        },
        sort_keys=True,
    )


def config_from_json(name: str, record: str | bytes) -> SubscriptionConfig:
    fields = json.loads(record)
    return SubscriptionConfig(
        name, fields["topic"], fields["pattern"], fields["max_deliveries"], fields["dead_letter"]
    )


class Receipts:
    """Receipts that name the issuing broker instance, so that a foreign one is unknown."""

    def __init__(self) -> None:
        self.owner = uuid.uuid4().hex[:12]

    def new(self) -> str:
        return f"{self.owner}.{uuid.uuid4().hex}"

    def mine(self, receipt: str) -> bool:
        return receipt.startswith(self.owner + ".")


class KombuBroker(Broker):
    """Base of the kombu adapters: the connection and the errors that mean "unavailable"."""

    def __init__(self, url: str, transport_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.connection = kombu.Connection(  # type: ignore[attr-defined,no-untyped-call]
            url,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            transport_options=transport_options or {},
        )
        self.receipts = Receipts()
        self._unavailable_errors: tuple[type[BaseException], ...] = (
            *self.connection.connection_errors,
            OSError,
        )
        self._refused_errors: tuple[type[BaseException], ...] = tuple(
            self.connection.channel_errors
        )

    @contextmanager
    def unavailable_on_failure(self, doing: str) -> Iterator[None]:
        """Translate the client library's errors into BrokerUnavailable."""
        try:
            yield
        except self._unavailable_errors as error:
            raise BrokerUnavailable(f"{self.kind} unavailable while {doing}: {error}") from error
        except self._refused_errors as error:  # e.g. a key of another type on Redis
            raise BrokerUnavailable(f"{self.kind} refused {doing}: {error}") from error
