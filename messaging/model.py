"""The message model shared by the service, the port and every adapter."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

HeaderValue = str | int | float | bool
Headers = Mapping[str, HeaderValue]

JSON_CONTENT_TYPE = "application/json"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
BINARY_CONTENT_TYPE = "application/octet-stream"


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON; raises ValueError for NaN and Infinity."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: keep them as JSON escapes
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")


@dataclass(frozen=True)
class OutgoingMessage:
    """A message as a publisher writes it; the service fills in ``id`` and ``key``."""

    payload: bytes
    content_type: str = BINARY_CONTENT_TYPE
    key: str | None = None
    headers: Headers = field(default_factory=dict)
    id: str | None = None

    @classmethod
    def json(cls, value: Any, **options: Any) -> OutgoingMessage:
        return cls(encode_json(value), JSON_CONTENT_TYPE, **options)

    @classmethod
    def text(cls, value: str, **options: Any) -> OutgoingMessage:
        return cls(value.encode(), TEXT_CONTENT_TYPE, **options)


@dataclass(frozen=True)
class Envelope:
    """A message ready for the broker: every field resolved and validated by the service."""

    id: str
    key: str
    headers: Headers
    content_type: str
    payload: bytes
    published_at: datetime


@dataclass(frozen=True)
class Message:
    """A delivered message. ``receipt`` is None when it was pulled with ``auto_ack``."""

    id: str
    topic: str
    key: str
    headers: Headers
    content_type: str
    payload: bytes
    published_at: datetime
    delivery_count: int
    receipt: str | None


@dataclass(frozen=True)
class SubscriptionConfig:
    """What a subscription is. ``topic`` and ``pattern`` are None for a dead-letter one."""

    name: str
    topic: str | None
    pattern: str | None = "#"
    max_deliveries: int = 0
    dead_letter: bool = False

    @property
    def dead_letter_name(self) -> str:
        return dead_letter_name(self.name)


def dead_letter_name(subscription: str) -> str:
    return f"{subscription}.dead-letter"


@dataclass(frozen=True)
class SubscriptionInfo:
    config: SubscriptionConfig
    depth: int
    """Messages ready for delivery (not leased)."""


@dataclass(frozen=True)
class PublishResult:
    ids: list[str]
    unroutable: list[str]


@dataclass(frozen=True)
class ReceiptOutcome:
    """How many receipts took effect, and which were not held (expired, used or foreign)."""

    done: int
    unknown: list[str]
