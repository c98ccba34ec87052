"""The contract's JSON form of messages: payload fields ``body`` (JSON), ``text`` or
``data_base64``, chosen on publish by the client and on pull by the stored content type."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from .model import (
    BINARY_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    Message,
    OutgoingMessage,
    encode_json,
)

PAYLOAD_FIELDS = ("body", "text", "data_base64")
MESSAGE_FIELDS = frozenset((*PAYLOAD_FIELDS, "content_type", "key", "headers", "id"))


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_json(content_type: str) -> bool:
    kind = media_type(content_type)
    return kind == JSON_CONTENT_TYPE or kind.endswith("+json")


def decode_payload(content_type: str, payload: bytes) -> tuple[str, Any]:
    """The payload field for a stored message: (field name, value)."""
    if is_json(content_type):
        try:
            return "body", json.loads(payload)
        except ValueError:
            pass
    elif media_type(content_type).startswith("text/"):
        try:
            return "text", payload.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return "data_base64", base64.b64encode(payload).decode("ascii")


def message_to_json(message: Message) -> dict[str, Any]:
    field, value = decode_payload(message.content_type, message.payload)
    fields: dict[str, Any] = {
        "id": message.id,
        "topic": message.topic,
        "key": message.key,
        "headers": dict(message.headers),
        "content_type": message.content_type,
        "published_at": message.published_at.isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"
        ),
        "delivery_count": message.delivery_count,
        field: value,
    }
    if message.receipt is not None:
        fields["receipt"] = message.receipt
    return fields


def message_from_json(fields: Any, where: str, errors: dict[str, str]) -> OutgoingMessage | None:
    """An OutgoingMessage from a JSON message object; problems go to ``errors`` under
    field names prefixed with ``where``. The service validates key, headers and id."""
    if not isinstance(fields, Mapping):
        errors[where or "message"] = "must be an object"
        return None
    for unknown in sorted(set(fields) - MESSAGE_FIELDS):
        errors[where + unknown] = "unknown field"
    for name in ("key", "id"):
        if name in fields and not isinstance(fields[name], str):
            errors[where + name] = "must be a string"
    present = [name for name in PAYLOAD_FIELDS if name in fields]
    if len(present) != 1:
        errors[where + "body"] = "exactly one of body, text, data_base64 is required"
        return None
    name = present[0]
    value = fields[name]
    content_type = fields.get("content_type", BINARY_CONTENT_TYPE)
    if "content_type" in fields and name != "data_base64":
        errors[where + "content_type"] = "only allowed with data_base64"
    if name == "body":
        try:
            payload = encode_json(value)
        except ValueError:
            errors[where + "body"] = "must be a JSON value (no NaN or Infinity)"
            return None
        content_type = JSON_CONTENT_TYPE
    elif name == "text":
        try:
            payload = value.encode("utf-8")
        except (AttributeError, UnicodeEncodeError):
            errors[where + "text"] = "must be a string of valid Unicode"
            return None
        content_type = TEXT_CONTENT_TYPE
    else:
        try:
            payload = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError, TypeError):
            errors[where + "data_base64"] = "must be a base64 string"
            return None
        if not isinstance(content_type, str) or not content_type.strip():
            errors[where + "content_type"] = "must be a non-empty string"
            return None
    return OutgoingMessage(
        payload=payload,
        content_type=content_type,
        key=fields.get("key"),
        headers=fields.get("headers", {}),
        id=fields.get("id"),
    )
