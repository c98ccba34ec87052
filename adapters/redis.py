"""The Redis adapter.

Layout (kombu's, so kombu programs interoperate): a subscription is a list named after it,
holding kombu-format messages (LPUSH in, RPOP out); a topic's bindings are the set
``_kombu.binding.{topic}``. The gateway adds, per subscription, a hash of leased messages
``messaging.leases.{name}`` and a sorted set of lease deadlines ``messaging.deadlines.{name}``
(Redis server time, ms), and one hash ``messaging.subscriptions`` with every
subscription's configuration. Every step that moves a message is one Lua script, so a
process that dies at any point loses nothing: its leases end and any puller (or the lease
clock thread of any gateway that holds leases there) gives them back.
"""

from __future__ import annotations

import base64
import contextlib
import heapq
import itertools
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import redis

from messaging.errors import BrokerUnavailable, SubscriptionConflict, SubscriptionNotFound
from messaging.model import (
    Envelope,
    Message,
    ReceiptOutcome,
    SubscriptionConfig,
    SubscriptionInfo,
)

from .kombu_base import (
    CONNECT_TIMEOUT_SECONDS,
    DELIVERY_COUNT_HEADER,
    IO_TIMEOUT_SECONDS,
    PUBLISHED_AT_HEADER,
    KombuBroker,
    config_from_json,
    config_to_json,
    delivered_message,
)

log = logging.getLogger("messaging.redis")

CATALOG = "messaging.subscriptions"
BINDING_SEPARATOR = "\x06\x16"
BLOCK_CHUNK_SECONDS = 5.0
"""Longest single blocking wait; the blocking connection times out a little after it."""

PULL = """
local catalog, list, leases, deadlines = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('HEXISTS', catalog, ARGV[1]) == 0 then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now, 'WITHSCORES', 'LIMIT', 0, 100)
local expired_raw = {}
for i = 1, #expired, 2 do
  expired_raw[#expired_raw + 1] = expired[i]
  expired_raw[#expired_raw + 1] = redis.call('HGET', leases, expired[i]) or ''
  expired_raw[#expired_raw + 1] = expired[i + 1]
end
local wanted, lease_ms = tonumber(ARGV[2]), tonumber(ARGV[3])
local taken = {}
for i = 1, wanted do
  local raw = redis.call('RPOP', list)
  if not raw then break end
  taken[#taken + 1] = raw
  local receipt = ARGV[3 + i]
  if receipt then
    redis.call('HSET', leases, receipt, raw)
    redis.call('ZADD', deadlines, now + lease_ms, receipt)
  end
end
local next_deadline = redis.call('ZRANGE', deadlines, 0, 0, 'WITHSCORES')[2] or -1
return {taken, expired_raw, now, next_deadline}
"""

GIVE_BACK = """
local leases, deadlines, target = KEYS[1], KEYS[2], KEYS[3]
local receipt, raw, expected, where = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local deadline = redis.call('ZSCORE', deadlines, receipt)
if not deadline then return 0 end
if expected ~= '' and deadline ~= expected then return 0 end
redis.call('ZREM', deadlines, receipt)
redis.call('HDEL', leases, receipt)
if where == 'head' then redis.call('RPUSH', target, raw)
elseif where == 'tail' then redis.call('LPUSH', target, raw) end
return 1
"""

PUBLISH = r"""
-- Routes each message by the topic's bindings as RabbitMQ does (`*` one word, `#` zero
-- or more) and pushes it; answers the 1-based positions of the messages routed nowhere.
local function words(text)
  local found = {}
  for word in (text .. '.'):gmatch('([^.]*)%.') do found[#found + 1] = word end
  return found
end
local function matches(pattern, p, key, k)
  if p > #pattern then return k > #key end
  local word = pattern[p]
  if word == '#' then
    for skip = k, #key + 1 do
      if matches(pattern, p + 1, key, skip) then return true end
    end
    return false
  end
  if k > #key then return false end
  return (word == '*' or word == key[k]) and matches(pattern, p + 1, key, k + 1)
end
local separator = '\6\22'
local bindings = {}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local first = string.find(member, separator, 1, true)
  if first then
    local last = first
    while true do
      local after = string.find(member, separator, last + 2, true)
      if not after then break end
      last = after
    end
    local pattern = words(string.sub(member, 1, first - 1))
    bindings[#bindings + 1] = {pattern, string.sub(member, last + 2)}
  end
end
local count = tonumber(ARGV[1])
local per_queue, order, missed, routes = {}, {}, {}, {}
for i = 1, count do
  local key = ARGV[1 + i]
  local queues = routes[key]
  if not queues then
    local key_words, seen = words(key), {}
    queues = {}
    for _, binding in ipairs(bindings) do
      local queue = binding[2]
      if not seen[queue] and matches(binding[1], 1, key_words, 1) then
        seen[queue] = true
        queues[#queues + 1] = queue
      end
    end
    routes[key] = queues
  end
  if #queues == 0 then missed[#missed + 1] = i end
  for _, queue in ipairs(queues) do
    if not per_queue[queue] then per_queue[queue] = {}; order[#order + 1] = queue end
    table.insert(per_queue[queue], ARGV[1 + count + i])
  end
end
for _, queue in ipairs(order) do redis.call('LPUSH', queue, unpack(per_queue[queue])) end
return missed
"""

SETTLE = """
local leases, deadlines, mode, lease_ms = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 0 then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = {}
for i = 4, #ARGV do
  local receipt = ARGV[i]
  local deadline = tonumber(redis.call('ZSCORE', deadlines, receipt))
  if deadline and deadline > now then
    if mode == 'ack' then
      redis.call('ZREM', deadlines, receipt)
      redis.call('HDEL', leases, receipt)
      held[#held + 1] = receipt
    elseif mode == 'extend' then
      redis.call('ZADD', deadlines, now + lease_ms, receipt)
      held[#held + 1] = receipt
    else
      held[#held + 1] = receipt
      held[#held + 1] = redis.call('HGET', leases, receipt)
    end
  end
end
return held
"""


def _binding_member(pattern: str, queue: str) -> str:
    """kombu's binding record: routing key, the regular expression kombu's topic exchange
    matches keys with, queue. The expression is RabbitMQ's reading of the pattern, so
    kombu producers route as RabbitMQ would."""
    return BINDING_SEPARATOR.join((pattern, amqp_pattern_regex(pattern), queue))


def amqp_pattern_regex(pattern: str) -> str:
    """A regular expression matching what ``pattern`` matches (``re.match``)."""
    separator = r"(?:^|\.)"
    parts = []
    for word in pattern.split("."):
        if word == "#":
            parts.append(f"(?:{separator}[^.]*)*")
        elif word == "*":
            parts.append(f"{separator}[^.]*")
        else:
            parts.append(separator + re.escape(word))
    return "^" + "".join(parts) + r"\Z"


def _binding_keys(topic: str) -> tuple[str, str]:
    return f"_kombu.binding.{topic}", f"_kombu.binding_permanent.{topic}"


def _lease_keys(name: str) -> tuple[str, str]:
    return f"messaging.leases.{name}", f"messaging.deadlines.{name}"


class RedisBroker(KombuBroker):
    kind = "redis"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        options: dict[str, Any] = {
            "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "health_check_interval": 10,
        }
        self._client = redis.Redis.from_url(url, socket_timeout=IO_TIMEOUT_SECONDS, **options)
        self._blocking = redis.Redis.from_url(
            url, socket_timeout=BLOCK_CHUNK_SECONDS + 3, **options
        )
        self._pull = self._client.register_script(PULL)
        self._give_back_script = self._client.register_script(GIVE_BACK)
        self._settle = self._client.register_script(SETTLE)
        self._publish = self._client.register_script(PUBLISH)
        self._messages = _KombuMessages()
        self._clock = threading.Condition()
        self._due: list[tuple[float, str]] = []
        self._leased_from: set[str] = set()
        self._closed = False
        self._clock_thread = threading.Thread(
            target=self._run_lease_clock, name="redis-leases", daemon=True
        )
        self._clock_thread.start()

    # Subscriptions

    def declare_subscription(self, config: SubscriptionConfig) -> bool:
        assert config.topic is not None and config.pattern is not None
        record = config_to_json(config)
        dead = SubscriptionConfig(config.dead_letter_name, None, None)
        with (
            self.unavailable_on_failure("declaring a subscription"),
            self._client.pipeline() as pipe,
        ):
            while True:
                try:
                    pipe.watch(CATALOG)  # type: ignore[no-untyped-call]
                    existing = pipe.hget(CATALOG, config.name)
                    if existing is not None:
                        if config_from_json(config.name, existing) != config:
                            raise SubscriptionConflict(
                                f"subscription {config.name!r} exists with another configuration"
                            )
                        return False
                    dead_existing = pipe.hget(CATALOG, dead.name) if config.dead_letter else None
                    if (
                        dead_existing is not None
                        and config_from_json(dead.name, dead_existing) != dead
                    ):
                        raise SubscriptionConflict(
                            f"{dead.name!r} exists and is not a dead-letter subscription"
                        )
                    pipe.multi()
                    pipe.hset(CATALOG, config.name, record)
                    member = _binding_member(config.pattern, config.name)
                    for key in _binding_keys(config.topic):
                        pipe.sadd(key, member)
                    if config.dead_letter and dead_existing is None:
                        pipe.hset(CATALOG, dead.name, config_to_json(dead))
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue

    def get_subscription(self, name: str) -> SubscriptionInfo:
        with self.unavailable_on_failure("reading a subscription"):
            pipe = self._client.pipeline()
            pipe.hget(CATALOG, name)
            pipe.llen(name)
            record, depth = pipe.execute()
        if record is None:
            raise SubscriptionNotFound(name)
        return SubscriptionInfo(config_from_json(name, record), depth)

    def list_subscriptions(self) -> list[SubscriptionInfo]:
        with self.unavailable_on_failure("listing subscriptions"):
            records = self._client.hgetall(CATALOG)
            names = sorted(_text(n) for n in records)
            pipe = self._client.pipeline()
            for name in names:
                pipe.llen(name)
            depths = pipe.execute()
        return [
            SubscriptionInfo(config_from_json(name, records[name.encode()]), depth)
            for name, depth in zip(names, depths, strict=True)
        ]

    def delete_subscription(self, name: str) -> None:
        with (
            self.unavailable_on_failure("deleting a subscription"),
            self._client.pipeline() as pipe,
        ):
            while True:
                try:
                    pipe.watch(CATALOG)  # type: ignore[no-untyped-call]
                    record = pipe.hget(CATALOG, name)
                    if record is None:
                        raise SubscriptionNotFound(name)
                    config = config_from_json(name, record)
                    pipe.multi()
                    pipe.hdel(CATALOG, name)
                    if config.topic is not None and config.pattern is not None:
                        member = _binding_member(config.pattern, name)
                        for key in _binding_keys(config.topic):
                            pipe.srem(key, member)
                    pipe.delete(name, *_lease_keys(name))
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def _config(self, name: str) -> SubscriptionConfig:
        record = self._client.hget(CATALOG, name)
        if record is None:
            raise SubscriptionNotFound(name)
        return config_from_json(name, record)

    # Publishing

    def publish(self, topic: str, envelopes: Sequence[Envelope]) -> list[str]:
        raws = self._messages.encode(topic, envelopes)
        with self.unavailable_on_failure("publishing"):
            missed = self._publish(
                keys=[_binding_keys(topic)[0]],
                args=[len(envelopes), *(e.key for e in envelopes), *raws],
            )
        return [envelopes[int(index) - 1].id for index in missed]

    # Pulling and leases

    def pull(
        self,
        name: str,
        max_messages: int,
        wait_seconds: float,
        lease_seconds: float,
        auto_ack: bool,
    ) -> list[Message]:
        give_up_at = time.monotonic() + wait_seconds
        lease_ms = max(1, int(lease_seconds * 1000))
        leases, deadlines = _lease_keys(name)
        with self.unavailable_on_failure("pulling"):
            while True:
                receipts: list[str] = []
                if not auto_ack:
                    receipts = [self.receipts.new() for _ in range(max_messages)]
                answer = self._pull(
                    keys=[CATALOG, name, leases, deadlines],
                    args=[name, max_messages, lease_ms, *receipts],
                )
                if answer is None:
                    raise SubscriptionNotFound(name)
                taken, expired, now_ms, next_deadline = answer
                if expired:
                    self._give_back_expired(name, expired)
                if taken:
                    if not auto_ack:
                        self._remember(name, time.monotonic() + lease_seconds)
                    return [
                        self._decode(raw, receipts[i] if receipts else None)
                        for i, raw in enumerate(taken)
                    ]
                remaining = give_up_at - time.monotonic()
                if expired:
                    continue
                if remaining <= 0:
                    return []
                block = min(remaining, BLOCK_CHUNK_SECONDS)
                if int(next_deadline) >= 0:
                    block = min(block, max(0.0, (int(next_deadline) - int(now_ms)) / 1000))
                # Waits until the list has a message without taking it: the tail moves
                # to the tail.
                self._blocking.blmove(name, name, max(block, 0.01), "RIGHT", "RIGHT")  # type: ignore[arg-type]

    def _decode(self, raw: bytes, receipt: str | None) -> Message:
        payload = json.loads(raw)
        properties = payload.get("properties") or {}
        headers = payload.get("headers") or {}
        info = properties.get("delivery_info") or {}
        body = payload.get("body") or ""
        if properties.get("body_encoding") == "base64":
            body = base64.b64decode(body)
        previous = headers.get(DELIVERY_COUNT_HEADER, 0)
        return delivered_message(
            topic=info.get("exchange") or "",
            key=info.get("routing_key") or "",
            headers=headers,
            content_type=payload.get("content-type"),
            body=body,
            message_id=properties.get("message_id") or properties.get("delivery_tag"),
            timestamp=properties.get("timestamp"),
            delivery_count=(previous if isinstance(previous, int) else 0) + 1,
            receipt=receipt,
        )

    def _give_back_expired(self, name: str, expired: list[bytes]) -> None:
        for receipt, raw, deadline in zip(expired[::3], expired[1::3], expired[2::3], strict=True):
            self._give_back(name, receipt.decode(), raw, requeue=True, expected=deadline.decode())

    def _give_back(
        self, name: str, receipt: str, raw: bytes, requeue: bool, expected: str = ""
    ) -> bool:
        """Return a leased message: to the head of its subscription with one more delivery
        counted, or (no requeue, or no deliveries left) to the dead-letter subscription."""
        config = self._config(name)
        payload = json.loads(raw) if raw else {}
        headers = payload.setdefault("headers", {}) if payload else {}
        deliveries = int(headers.get(DELIVERY_COUNT_HEADER, 0)) + 1 if payload else 0
        leases, deadlines = _lease_keys(name)
        if (
            payload
            and requeue
            and not (config.max_deliveries and deliveries >= config.max_deliveries)
        ):
            headers[DELIVERY_COUNT_HEADER] = deliveries
            target, where = name, "head"
        elif payload and config.dead_letter:
            headers.pop(DELIVERY_COUNT_HEADER, None)
            target, where = config.dead_letter_name, "tail"
        else:
            target, where = name, "drop"
        moved = self._give_back_script(
            keys=[leases, deadlines, target],
            args=[receipt, json.dumps(payload), expected, where],
        )
        return bool(moved)

    def ack(self, name: str, receipts: Sequence[str]) -> ReceiptOutcome:
        held = self._held(name, receipts, "ack", 0)
        return ReceiptOutcome(len(held), [r for r in receipts if r not in held])

    def nack(self, name: str, receipts: Sequence[str], requeue: bool) -> ReceiptOutcome:
        found = self._held(name, receipts, "get", 0)
        held = set()
        with self.unavailable_on_failure("nacking"):
            for receipt, raw in _pairs(found):
                if self._give_back(name, receipt, raw, requeue):
                    held.add(receipt)
        return ReceiptOutcome(len(held), [r for r in receipts if r not in held])

    def extend(self, name: str, receipts: Sequence[str], lease_seconds: float) -> ReceiptOutcome:
        held = self._held(name, receipts, "extend", max(1, int(lease_seconds * 1000)))
        if held:
            self._remember(name, time.monotonic() + lease_seconds)
        return ReceiptOutcome(len(held), [r for r in receipts if r not in held])

    def _held(self, name: str, receipts: Sequence[str], mode: str, lease_ms: int) -> list[str]:
        mine = [r for r in receipts if self.receipts.mine(r)]
        with self.unavailable_on_failure("settling receipts"):
            answer = self._settle(
                keys=[*_lease_keys(name), CATALOG], args=[mode, lease_ms, name, *mine]
            )
        if answer is None:
            raise SubscriptionNotFound(name)
        return [_text(a) for a in answer] if mode != "get" else answer

    # The lease clock: gives back this process's leases as they end, even with no pulls.

    def _remember(self, name: str, due: float) -> None:
        with self._clock:
            self._leased_from.add(name)
            heapq.heappush(self._due, (due, name))
            if self._due[0] == (due, name):
                self._clock.notify()

    def _run_lease_clock(self) -> None:
        while True:
            with self._clock:
                while not self._closed and (not self._due or self._due[0][0] > time.monotonic()):
                    self._clock.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._closed:
                    return
                _, name = heapq.heappop(self._due)
            try:
                self._expire(name)
            except (BrokerUnavailable, SubscriptionNotFound):
                pass  # the next pull, or the next lease's clock, gives them back
            except Exception:  # the clock must keep running
                log.exception("ending leases of %r failed", name)

    def _expire(self, name: str) -> None:
        leases, deadlines = _lease_keys(name)
        with self.unavailable_on_failure("ending leases"):
            answer = self._pull(keys=[CATALOG, name, leases, deadlines], args=[name, 0, 0])
            if answer is not None and answer[1]:
                self._give_back_expired(name, answer[1])
            if answer is not None and int(answer[3]) >= 0:
                # A lease still runs (extended, or server and local clocks differ): look again.
                self._remember(
                    name, time.monotonic() + max(0.01, (int(answer[3]) - int(answer[2])) / 1000)
                )

    def check_health(self) -> None:
        with self.unavailable_on_failure("checking health"):
            self._client.ping()

    def close(self) -> None:
        with self._clock:
            self._closed = True
            self._clock.notify()
        self._clock_thread.join(IO_TIMEOUT_SECONDS + 1)  # it may be ending a lease
        with contextlib.suppress(BrokerUnavailable):
            self._give_back_all()
        self._client.close()
        self._blocking.close()

    def _give_back_all(self) -> None:
        """Every lease this instance holds goes back, deliverable at once."""
        with self.unavailable_on_failure("giving leases back"):
            for name in list(self._leased_from):
                leases, _ = _lease_keys(name)
                for receipt, raw in self._client.hscan_iter(leases):
                    if self.receipts.mine(receipt.decode()):
                        try:
                            self._give_back(name, receipt.decode(), raw, requeue=True)
                        except SubscriptionNotFound:
                            break


class _KombuMessages:
    """Messages as kombu's Redis transport stores them: JSON, the body in base64, the
    routing in ``properties.delivery_info``. Written by hand: this is the publish path."""

    def __init__(self) -> None:
        self._tag_prefix = uuid.uuid4().hex[:12] + "-"
        self._tags = itertools.count()

    def encode(self, topic: str, envelopes: Sequence[Envelope]) -> list[str]:
        dumps = json.dumps
        exchange = dumps(topic)
        encoded = []
        for envelope in envelopes:
            headers = dict(envelope.headers)
            seconds = envelope.published_at.timestamp()
            headers[PUBLISHED_AT_HEADER] = int(seconds * 1000)
            encoded.append(
                '{"body": "'
                + base64.b64encode(envelope.payload).decode("ascii")
                + '", "content-encoding": "binary", "content-type": '
                + dumps(envelope.content_type)
                + ', "headers": '
                + dumps(headers)
                + ', "properties": {"body_encoding": "base64", "delivery_info": {"exchange": '
                + exchange
                + ', "routing_key": '
                + dumps(envelope.key)
                + '}, "delivery_mode": 2, "delivery_tag": "'
                + self._tag_prefix
                + str(next(self._tags))
                + '", "message_id": '
                + dumps(envelope.id)
                + ', "priority": 0, "timestamp": '
                + repr(seconds)
                + "}}"
            )
        return encoded


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: list[Any]) -> Iterator[tuple[str, Any]]:
    for receipt, raw in zip(flat[::2], flat[1::2], strict=True):
        yield (receipt.decode() if isinstance(receipt, bytes) else receipt), raw
