"""One error hierarchy for the gateway.

Every class maps to exactly one status of the HTTP contract (``status``) and carries the
contract's ``code``. Adapters translate their client libraries' errors into these; the HTTP
layer turns them into ``{"error": {"code", "message"}}`` answers.
"""

from __future__ import annotations

from collections.abc import Mapping


class MessagingError(Exception):
    """Base of every error the gateway raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(MessagingError):
    """The request is malformed; ``fields`` maps each bad field to what is wrong with it."""

    status = 400
    code = "invalid_input"

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("; ".join(f"{name}: {why}" for name, why in self.fields.items()))


class Unauthorized(MessagingError):
    status = 401
    code = "unauthorized"


class SubscriptionNotFound(MessagingError):
    status = 404
    code = "subscription_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"no subscription named {name!r}")
        self.name = name


class SubscriptionConflict(MessagingError):
    status = 409
    code = "subscription_conflict"


class PayloadTooLarge(MessagingError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(MessagingError):
    status = 415
    code = "unsupported_media_type"


class BrokerUnavailable(MessagingError):
    """The broker cannot be reached or failed mid-operation; the call may be retried.

    A publish that raised this may or may not have been stored by the broker.
    """

    status = 503
    code = "broker_unavailable"
    retry_after_seconds = 1


class ConfigurationError(MessagingError):
    """The environment does not describe a usable gateway; startup stops (exit status 2)."""

    code = "configuration_error"


class UnknownBrokerScheme(ConfigurationError):
    def __init__(self, url_scheme: str, known: list[str]) -> None:
        super().__init__(
            f"no adapter for '{url_scheme}://'; known: {', '.join(s + '://' for s in known)}"
        )
