"""A broker-agnostic messaging gateway: one publish/pull interface over RabbitMQ, Redis and
an in-memory broker."""

from .errors import (
    BrokerUnavailable,
    InvalidInput,
    MessagingError,
    SubscriptionConflict,
    SubscriptionNotFound,
)
from .model import Message, OutgoingMessage, SubscriptionConfig, SubscriptionInfo
from .port import Broker
from .registry import create_broker
from .service import MessagingService

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "InvalidInput",
    "Message",
    "MessagingError",
    "MessagingService",
    "OutgoingMessage",
    "SubscriptionConfig",
    "SubscriptionConflict",
    "SubscriptionInfo",
    "SubscriptionNotFound",
    "create_broker",
]
