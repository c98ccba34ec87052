"""Adapters chosen by URL scheme. Adapters are imported only when chosen, so the core and
the in-memory broker need no broker client library."""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from .errors import ConfigurationError, UnknownBrokerScheme
from .port import Broker

_ADAPTERS: dict[str, str] = {
    "memory": "adapters.memory:MemoryBroker",
    "redis": "adapters.redis:RedisBroker",
    "rediss": "adapters.redis:RedisBroker",
    "amqp": "adapters.rabbitmq:RabbitMQBroker",
    "amqps": "adapters.rabbitmq:RabbitMQBroker",
}


def register_adapter(scheme: str, target: str) -> None:
    """Map ``scheme://`` URLs to ``"package.module:Class"``, whose constructor takes the URL."""
    _ADAPTERS[scheme.lower()] = target


def known_schemes() -> list[str]:
    return sorted(_ADAPTERS)


def create_broker(url: str) -> Broker:
    scheme = urlsplit(url).scheme.lower() if "://" in url else url
    target = _ADAPTERS.get(scheme)
    if target is None:
        raise UnknownBrokerScheme(scheme, known_schemes())
    module_name, class_name = target.split(":")
    try:
        adapter = getattr(importlib.import_module(module_name), class_name)
    except ImportError as error:
        raise ConfigurationError(f"the adapter for '{scheme}://' cannot load: {error}") from None
    broker: Broker = adapter(url)
    return broker
