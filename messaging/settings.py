"""Settings from the environment (the table in the HTTP contract)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError


@dataclass(frozen=True)
class Settings:
    broker_url: str = "memory://"
    api_tokens: tuple[str, ...] = ()
    max_body_bytes: int = 1_048_576
    host: str = "127.0.0.1"
    port: int = 8000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        tokens = tuple(t.strip() for t in env.get("MESSAGING_API_TOKENS", "").split(","))
        return cls(
            broker_url=env.get("MESSAGING_BROKER_URL", "").strip() or cls.broker_url,
            api_tokens=tuple(t for t in tokens if t),
            max_body_bytes=_integer(env, "MESSAGING_MAX_BODY_BYTES", cls.max_body_bytes, 1),
            host=env.get("MESSAGING_HOST", "").strip() or cls.host,
            port=_integer(env, "MESSAGING_PORT", cls.port, 0, 65535),
        )


def _integer(
    env: Mapping[str, str], name: str, default: int, low: int, high: int | None = None
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, not {raw!r}") from None
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f" to {high}"
        raise ConfigurationError(f"{name} must be from {low}{upper}, not {value}")
    return value


def mask_password(url: str) -> str:
    """The URL with its password replaced by ``***``, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
