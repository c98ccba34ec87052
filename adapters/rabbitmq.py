"""The RabbitMQ adapter.

* A topic is a durable topic exchange; a subscription a durable quorum queue of the same
  name bound to it with its pattern. Quorum queues count deliveries (``x-delivery-count``,
  exact even when a process dies) and enforce ``max_deliveries`` (``x-delivery-limit``)
  with the dead-letter queue as their dead-letter target.
* Publishing borrows a connection from a pool and confirms a whole batch at once;
  ``mandatory`` returns tell which messages matched no binding.
* Leases live in one I/O thread per broker instance that owns one connection: deliveries
  belong to the channel that received them, and py-amqp connections are not thread-safe,
  so pulls, acks, nacks, extends and lease ends are all commands to that thread. It holds
  one channel per subscription; when a lease ends it rejects the delivery with requeue.
  If the process dies, RabbitMQ requeues its deliveries at once.
* AMQP cannot list queues or read their arguments, so the subscriptions' configurations
  are kept in the durable queue ``messaging.catalog`` (one message: the whole catalog),
  changed only under a lock that is an exclusive queue (``messaging.catalog.lock``), which
  RabbitMQ releases when its connection dies.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import queue
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import amqp
import amqp.exceptions

from messaging.errors import (
    BrokerUnavailable,
    MessagingError,
    SubscriptionConflict,
    SubscriptionNotFound,
)
from messaging.model import (
    Envelope,
    Message,
    ReceiptOutcome,
    SubscriptionConfig,
    SubscriptionInfo,
)

from .kombu_base import (
    DELIVERY_COUNT_HEADER,
    IO_TIMEOUT_SECONDS,
    KombuBroker,
    broker_headers,
    config_from_json,
    config_to_json,
    delivered_message,
)

T = TypeVar("T")
log = logging.getLogger("messaging.rabbitmq")

CATALOG_QUEUE = "messaging.catalog"
CATALOG_LOCK_QUEUE = "messaging.catalog.lock"
CONFIRM_TIMEOUT_SECONDS = IO_TIMEOUT_SECONDS
LOCK_TIMEOUT_SECONDS = 10.0
HEARTBEAT_SECONDS = 10
POOL_SIZE = 4
SHORTSTR_BYTES = 255
LONG_ID_HEADER = "x-messaging-id"
"""Carries an id too long for the message_id property (a short string of 255 bytes)."""
READY_PATIENCE_SECONDS = 1.0


def queue_arguments(config: SubscriptionConfig) -> dict[str, Any]:
    arguments: dict[str, Any] = {"x-queue-type": "quorum"}
    if config.max_deliveries:
        arguments["x-delivery-limit"] = config.max_deliveries - 1
    if config.dead_letter:
        arguments["x-dead-letter-exchange"] = ""
        arguments["x-dead-letter-routing-key"] = config.dead_letter_name
    return arguments


def decode_delivery(message: amqp.Message, receipt: str | None) -> Message:
    properties = message.properties
    headers = properties.get("application_headers") or {}
    info = message.delivery_info
    topic, key = info.get("exchange", ""), info.get("routing_key", "")
    deaths = headers.get("x-death")
    if deaths and isinstance(deaths, list) and isinstance(deaths[0], dict):
        topic = deaths[0].get("exchange", topic)
        key = (deaths[0].get("routing-keys") or [key])[0]
    previous = headers.get(DELIVERY_COUNT_HEADER, 0)
    return delivered_message(
        topic=topic,
        key=key,
        headers=headers,
        content_type=properties.get("content_type"),
        body=message.body,
        message_id=headers.get(LONG_ID_HEADER) or properties.get("message_id"),
        timestamp=properties.get("timestamp"),
        delivery_count=(previous if isinstance(previous, int) else 0) + 1,
        receipt=receipt,
    )


class RabbitMQBroker(KombuBroker):
    kind = "rabbitmq"

    def __init__(self, url: str) -> None:
        super().__init__(
            url, {"read_timeout": IO_TIMEOUT_SECONDS, "write_timeout": IO_TIMEOUT_SECONDS}
        )
        self._pool: queue.LifoQueue[_PublishChannel] = queue.LifoQueue()
        self._pool_slots = threading.BoundedSemaphore(POOL_SIZE)
        self._catalog_lock = threading.Lock()
        self._catalog_connection: amqp.Connection | None = None
        self._leases = _LeaseLoop(self)

    def open_connection(self, heartbeat: int = 0) -> amqp.Connection:
        connection = self.connection.clone(heartbeat=heartbeat)  # type: ignore[no-untyped-call]
        with self.unavailable_on_failure("connecting"):
            connection.connect()
        raw: amqp.Connection = connection.connection
        return raw

    # Publishing

    def publish(self, topic: str, envelopes: Sequence[Envelope]) -> list[str]:
        """On one of at most POOL_SIZE connections; more publishers wait for one."""
        if not self._pool_slots.acquire(timeout=IO_TIMEOUT_SECONDS):
            raise BrokerUnavailable("every publishing connection stayed busy")
        try:
            return self._publish(topic, envelopes)
        finally:
            self._pool_slots.release()

    def _publish(self, topic: str, envelopes: Sequence[Envelope]) -> list[str]:
        for attempt in (1, 2):
            channel = self._checkout()
            try:
                unroutable = channel.publish(topic, envelopes)
            except amqp.exceptions.NotFound as error:  # the exchange was deleted meanwhile
                channel.close()
                if attempt == 2:
                    raise BrokerUnavailable(f"rabbitmq refused the publish: {error}") from error
                continue
            except amqp.exceptions.AMQPError as error:  # e.g. an exchange of another type
                channel.close()
                raise BrokerUnavailable(f"rabbitmq refused the publish: {error}") from error
            except self._unavailable_errors as error:
                channel.close()
                raise BrokerUnavailable(
                    f"rabbitmq unavailable while publishing: {error}"
                ) from error
            except BaseException:
                channel.close()
                raise
            self._pool.put(channel)
            return unroutable
        raise AssertionError("unreachable")

    def _checkout(self) -> _PublishChannel:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return _PublishChannel(self.open_connection())

    # The catalog

    @contextmanager
    def _catalog(self) -> Iterator[_CatalogSession]:
        with self._catalog_lock:
            try:
                if self._catalog_connection is None:
                    self._catalog_connection = self.open_connection()
                with _CatalogSession.locked(self._catalog_connection) as session:
                    yield session
            except self._unavailable_errors as error:
                self._drop_catalog_connection()
                raise BrokerUnavailable(f"rabbitmq unavailable: {error}") from error
            except amqp.exceptions.AMQPError as error:
                self._drop_catalog_connection()
                raise BrokerUnavailable(f"rabbitmq refused: {error}") from error

    def _drop_catalog_connection(self) -> None:
        if self._catalog_connection is not None:
            with suppress(Exception):
                self._catalog_connection.collect()
            self._catalog_connection = None

    def declare_subscription(self, config: SubscriptionConfig) -> bool:
        assert config.topic is not None and config.pattern is not None
        dead = SubscriptionConfig(config.dead_letter_name, None, None)
        with self._catalog() as session:
            existing = session.configs.get(config.name)
            if existing is not None:
                if existing != config:
                    raise SubscriptionConflict(
                        f"subscription {config.name!r} exists with another configuration"
                    )
                return False
            dead_existing = session.configs.get(dead.name) if config.dead_letter else None
            if dead_existing is not None and dead_existing != dead:
                raise SubscriptionConflict(f"{dead.name!r} exists and is not a dead-letter one")
            channel = session.channel
            try:
                if config.dead_letter:
                    channel.queue_declare(
                        dead.name, durable=True, auto_delete=False, arguments=queue_arguments(dead)
                    )
                channel.exchange_declare(config.topic, "topic", durable=True, auto_delete=False)
                channel.queue_declare(
                    config.name, durable=True, auto_delete=False, arguments=queue_arguments(config)
                )
                channel.queue_bind(config.name, config.topic, config.pattern)
            except amqp.exceptions.PreconditionFailed as error:
                raise SubscriptionConflict(
                    f"the topic or the queue exists on RabbitMQ with other arguments: {error}"
                ) from None
            session.configs[config.name] = config
            if config.dead_letter:
                session.configs[dead.name] = dead
            session.save()
            return True

    def get_subscription(self, name: str) -> SubscriptionInfo:
        with self._catalog() as session:
            config = session.configs.get(name)
            if config is None:
                raise SubscriptionNotFound(name)
            return SubscriptionInfo(config, session.depth(name))

    def list_subscriptions(self) -> list[SubscriptionInfo]:
        with self._catalog() as session:
            return [
                SubscriptionInfo(config, session.depth(name))
                for name, config in sorted(session.configs.items())
            ]

    def delete_subscription(self, name: str) -> None:
        with self._catalog() as session:
            if name not in session.configs:
                raise SubscriptionNotFound(name)
            session.channel.queue_delete(name)
            del session.configs[name]
            session.save()

    # Leases: every call is a command to the lease thread

    def pull(
        self,
        name: str,
        max_messages: int,
        wait_seconds: float,
        lease_seconds: float,
        auto_ack: bool,
    ) -> list[Message]:
        pulled: list[Message] = self._leases.submit(
            lambda done: self._leases.pull(
                done, name, max_messages, wait_seconds, lease_seconds, auto_ack
            ),
            wait_seconds,
        )
        return pulled

    def ack(self, name: str, receipts: Sequence[str]) -> ReceiptOutcome:
        return self._leases.run(lambda: self._leases.settle(name, receipts, "ack", 0))

    def nack(self, name: str, receipts: Sequence[str], requeue: bool) -> ReceiptOutcome:
        mode = "requeue" if requeue else "reject"
        return self._leases.run(lambda: self._leases.settle(name, receipts, mode, 0))

    def extend(self, name: str, receipts: Sequence[str], lease_seconds: float) -> ReceiptOutcome:
        return self._leases.run(
            lambda: self._leases.settle(name, receipts, "extend", lease_seconds)
        )

    def check_health(self) -> None:
        self._leases.run(self._leases.ping)

    def close(self) -> None:
        self._leases.stop()
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                break
        with self._catalog_lock:
            self._drop_catalog_connection()


class _PublishChannel:
    """A pooled connection with one channel in confirm mode."""

    def __init__(self, connection: amqp.Connection) -> None:
        self.connection = connection
        self.channel = connection.channel()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        self.channel.events["basic_return"].add(self._on_return)
        self.declared: set[str] = set()
        self.sent = 0
        self.outstanding: set[int] = set()
        self.refused = 0
        self.returned: list[str] = []

    def _on_ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self.outstanding = {t for t in self.outstanding if t > tag}
        else:
            self.outstanding.discard(tag)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        before = len(self.outstanding)
        self._on_ack(tag, multiple)
        self.refused += before - len(self.outstanding)

    def _on_return(self, error: Exception, exchange: str, key: str, message: amqp.Message) -> None:
        self.returned.append(message.properties.get("message_id", ""))

    def publish(self, topic: str, envelopes: Sequence[Envelope]) -> list[str]:
        if topic not in self.declared:
            self.channel.exchange_declare(topic, "topic", durable=True, auto_delete=False)
            self.declared.add(topic)
        self.returned, self.refused = [], 0
        for envelope in envelopes:
            headers = broker_headers(envelope)
            message_id: str | None = envelope.id
            if len(envelope.id.encode("utf-8", "surrogatepass")) > SHORTSTR_BYTES:
                headers[LONG_ID_HEADER], message_id = envelope.id, None
            message = amqp.Message(
                envelope.payload,
                content_type=envelope.content_type,
                message_id=message_id,
                timestamp=int(envelope.published_at.timestamp()),
                delivery_mode=2,
                application_headers=headers,
            )
            self.channel.basic_publish(
                message, exchange=topic, routing_key=envelope.key, mandatory=True
            )
            self.sent += 1
            self.outstanding.add(self.sent)
        give_up_at = time.monotonic() + CONFIRM_TIMEOUT_SECONDS
        while self.outstanding:
            remaining = give_up_at - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("publisher confirms did not arrive")
            try:
                self.connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue
        if self.refused:
            raise BrokerUnavailable(f"rabbitmq refused {self.refused} of {len(envelopes)} messages")
        return list(self.returned)

    def close(self) -> None:
        with suppress(Exception):
            self.connection.collect()


class _CatalogSession:
    """The catalog, read and held under the lock for one administrative call."""

    def __init__(self, channel: amqp.Channel) -> None:
        self.channel = channel
        self.configs: dict[str, SubscriptionConfig] = {}
        self.version = 0
        self._held: list[int] = []

    @classmethod
    @contextmanager
    def locked(cls, connection: amqp.Connection) -> Iterator[_CatalogSession]:
        channel = connection.channel()
        give_up_at = time.monotonic() + LOCK_TIMEOUT_SECONDS
        while True:
            try:
                channel.queue_declare(CATALOG_LOCK_QUEUE, exclusive=True, auto_delete=True)
                break
            except amqp.exceptions.ResourceLocked:
                if time.monotonic() > give_up_at:
                    raise BrokerUnavailable("the subscription catalog stayed locked") from None
                time.sleep(0.01)
        try:
            session = cls(channel)
            session._read()
            yield session
        finally:
            try:
                channel.queue_delete(CATALOG_LOCK_QUEUE)
            finally:
                channel.close()  # gives back the catalog message unless save() acked it

    def _read(self) -> None:
        self.channel.queue_declare(CATALOG_QUEUE, durable=True, auto_delete=False)
        best: dict[str, Any] = {"version": 0, "subscriptions": {}}
        while (message := self.channel.basic_get(CATALOG_QUEUE)) is not None:
            self._held.append(message.delivery_tag)
            record = json.loads(message.body)
            if record["version"] >= best["version"]:
                best = record
        self.version = best["version"]
        self.configs = {
            name: config_from_json(name, json.dumps(fields))
            for name, fields in best["subscriptions"].items()
        }

    def depth(self, name: str) -> int:
        try:
            return int(self.channel.queue_declare(name, passive=True).message_count)
        except amqp.exceptions.NotFound:
            self.channel = (
                self.channel.connection.channel() if self.channel.connection else self.channel
            )
            return 0

    def save(self) -> None:
        """Publish the new catalog (confirmed), then drop the old one."""
        record = {
            "version": self.version + 1,
            "subscriptions": {n: json.loads(config_to_json(c)) for n, c in self.configs.items()},
        }
        self.channel.confirm_select()
        self.channel.basic_publish_confirm(
            amqp.Message(json.dumps(record), delivery_mode=2),
            exchange="",
            routing_key=CATALOG_QUEUE,
        )
        for tag in self._held:
            self.channel.basic_ack(tag)
        self._held = []
        self.version += 1


@dataclass
class _Lease:
    subscription: str
    channel: amqp.Channel
    delivery_tag: int
    deadline: float


@dataclass
class _Waiter:
    """A pull in progress: a consumer that collects up to ``wanted`` deliveries."""

    done: Future[list[Message]]
    subscription: str
    wanted: int
    lease_seconds: float
    auto_ack: bool
    deadline: float
    channel: amqp.Channel
    long_poll: bool = False
    """Nothing was ready: it waits for one message, with a prefetch of one."""
    consumer_tag: str = ""
    arrived: list[amqp.Message] = field(default_factory=list)


class _LeaseLoop:
    """The thread that owns the lease connection. Everything below runs in that thread,
    except ``call`` and ``stop``."""

    def __init__(self, broker: RabbitMQBroker) -> None:
        self._broker = broker
        self._commands: queue.SimpleQueue[tuple[Callable[[Future[Any]], None], Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._connection: amqp.Connection | None = None
        self._channels: dict[str, amqp.Channel] = {}
        self._broken: list[amqp.Channel] = []
        self._leases: dict[str, _Lease] = {}
        self._unsettled: dict[amqp.Channel, set[int]] = {}
        """Delivery tags leased and not yet settled, per channel."""
        self._timers: list[tuple[float, int, str | _Waiter]] = []
        self._tie = itertools.count()
        self._waiters: dict[str, _Waiter] = {}
        self._finished: list[_Waiter] = []

    # Called from any thread

    def run(self, work: Callable[[], T]) -> T:
        """The result of ``work()``, run in the lease thread."""
        result: T = self.submit(lambda done: done.set_result(work()), 0)
        return result

    def submit(self, command: Callable[[Future[Any]], None], wait_seconds: float) -> Any:
        """Run ``command`` in the lease thread; it resolves the future, then or later."""
        self._ensure_thread()
        done: Future[Any] = Future()
        self._commands.put((command, done))
        self._wake()
        try:
            return done.result(timeout=wait_seconds + CONFIRM_TIMEOUT_SECONDS)
        except TimeoutError:
            raise BrokerUnavailable("rabbitmq did not answer in time") from None

    def stop(self) -> None:
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping = True
        self._wake()
        thread.join(CONFIRM_TIMEOUT_SECONDS)

    def _wake(self) -> None:
        with suppress(BlockingIOError, OSError):
            self._wake_writer.send(b"\0")

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(
                    target=self._run, name="rabbitmq-leases", daemon=True
                )
                self._thread.start()

    # The loop

    def _run(self) -> None:
        while not self._stopping:
            try:
                self._turn()
            except self._broker._unavailable_errors as error:
                self._lose_connection(BrokerUnavailable(f"rabbitmq connection lost: {error}"))
            except amqp.exceptions.ChannelError:
                self._clean_broken_channels()
            except Exception as error:  # the loop must keep running: start afresh
                log.exception("the lease thread failed")
                self._lose_connection(BrokerUnavailable(f"rabbitmq lease thread failed: {error}"))
        self._shutdown()

    def _turn(self) -> None:
        now = time.monotonic()
        timeout = 1.0
        if self._timers:
            timeout = max(0.0, min(timeout, self._timers[0][0] - now))
        watched: list[Any] = [self._wake_reader]
        if self._connection is not None and self._connection.sock is not None:
            watched.append(self._connection.sock)
        readable, _, _ = select.select(watched, [], [], timeout)
        if self._wake_reader in readable:
            try:
                while self._wake_reader.recv(4096):
                    pass
            except BlockingIOError:
                pass
        if self._connection is not None:
            self._drain()
            self._connection.heartbeat_tick()
        self._run_timers()
        self._finish_waiters()
        while True:
            try:
                command, done = self._commands.get_nowait()
            except queue.Empty:
                break
            if done.set_running_or_notify_cancel():
                self._run_command(command, done)
            self._finish_waiters()

    def _run_command(self, command: Callable[[Future[Any]], None], done: Future[Any]) -> None:
        try:
            command(done)
        except MessagingError as error:
            done.set_exception(error)
        except self._broker._unavailable_errors as error:
            done.set_exception(BrokerUnavailable(f"rabbitmq unavailable: {error}"))
            raise
        except amqp.exceptions.NotFound as error:
            self._clean_broken_channels()
            done.set_exception(SubscriptionNotFound(_queue_in(str(error))))
        except amqp.exceptions.ChannelError as error:
            self._clean_broken_channels()
            done.set_exception(BrokerUnavailable(f"rabbitmq refused: {error}"))

    def _drain(self) -> None:
        assert self._connection is not None
        while True:
            try:
                self._connection.drain_events(timeout=0)
            except TimeoutError:
                return

    def ensure_connection(self) -> amqp.Connection:
        if self._connection is None:
            self._connection = self._broker.open_connection(heartbeat=HEARTBEAT_SECONDS)
        return self._connection

    def ping(self) -> None:
        """A round trip to the broker on the lease connection."""
        channel = self.ensure_connection().channel()
        channel.close()

    def _channel(self, name: str) -> amqp.Channel:
        channel = self._channels.get(name)
        if channel is None or not channel.is_open:
            channel = self.ensure_connection().channel()
            channel.basic_qos(0, 1, False)
            broken = self._broken

            def revive() -> None:  # the broker closed the channel: its deliveries are gone
                broken.append(channel)
                channel.collect()

            channel._do_revive = revive
            self._channels[name] = channel
        return channel

    def _clean_broken_channels(self) -> None:
        broken, self._broken = self._broken, []
        for channel in broken:
            for name, held in list(self._channels.items()):
                if held is channel:
                    del self._channels[name]
            self._unsettled.pop(channel, None)
            for receipt, lease in list(self._leases.items()):
                if lease.channel is channel:
                    del self._leases[receipt]
            for tag, waiter in list(self._waiters.items()):
                if waiter.channel is channel:
                    del self._waiters[tag]
                    if not waiter.done.done():
                        waiter.done.set_exception(SubscriptionNotFound(waiter.subscription))

    def _lose_connection(self, error: BrokerUnavailable) -> None:
        """Every delivery went back to its queue with the connection."""
        for waiter in self._waiters.values():
            if not waiter.done.done():
                waiter.done.set_exception(error)
        self._waiters.clear()
        self._finished.clear()
        self._leases.clear()
        self._unsettled.clear()
        self._channels.clear()
        self._timers.clear()
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(Exception):
                connection.collect()

    def _shutdown(self) -> None:
        """Give every lease back at once, then close."""
        try:
            for lease in self._leases.values():
                lease.channel.basic_reject(lease.delivery_tag, requeue=True)
            if self._connection is not None:
                self._connection.close()
        except Exception:
            pass
        self._lose_connection(BrokerUnavailable("the broker was closed"))
        while True:
            try:
                _, done = self._commands.get_nowait()
            except queue.Empty:
                break
            done.set_exception(BrokerUnavailable("the broker was closed"))

    # Commands

    def pull(
        self,
        done: Future[list[Message]],
        name: str,
        max_messages: int,
        wait_seconds: float,
        lease_seconds: float,
        auto_ack: bool,
    ) -> None:
        """Consume with a prefetch of what is ready (up to ``max_messages``), or, when
        nothing is, wait up to ``wait_seconds`` for the first message; then cancel."""
        channel = self._channel(name)
        ready = int(channel.queue_declare(name, passive=True).message_count)
        if not ready and wait_seconds <= 0:
            done.set_result([])
            return
        wanted = min(max_messages, ready) if ready else 1
        # Messages counted as ready can go to another consumer first: a pull that finds
        # them gone returns what it has after a moment, rather than its whole wait.
        patience = READY_PATIENCE_SECONDS if ready else wait_seconds
        waiter = _Waiter(
            done,
            name,
            wanted,
            lease_seconds,
            auto_ack,
            time.monotonic() + patience,
            channel,
            long_poll=not ready,
        )
        # A long poll takes one message at a time, so that it can answer before its
        # consumer is cancelled: nothing more can arrive while that message is unacked.
        channel.basic_qos(0, max_messages if ready else 1, False)
        waiter.consumer_tag = channel.basic_consume(
            name, callback=lambda message: self._arrived(waiter, message)
        )
        self._waiters[waiter.consumer_tag] = waiter
        heapq.heappush(self._timers, (waiter.deadline, next(self._tie), waiter))

    def _lease(
        self,
        name: str,
        channel: amqp.Channel,
        message: amqp.Message,
        lease_seconds: float,
        auto_ack: bool,
    ) -> Message:
        if auto_ack:
            return decode_delivery(message, None)
        receipt = self._broker.receipts.new()
        deadline = time.monotonic() + lease_seconds
        self._leases[receipt] = _Lease(name, channel, message.delivery_tag, deadline)
        heapq.heappush(self._timers, (deadline, next(self._tie), receipt))
        return decode_delivery(message, receipt)

    def _forget(self, receipt: str, lease: _Lease) -> None:
        del self._leases[receipt]
        unsettled = self._unsettled.get(lease.channel)
        if unsettled is not None:
            unsettled.discard(lease.delivery_tag)

    def _arrived(self, waiter: _Waiter, message: amqp.Message) -> None:
        waiter.arrived.append(message)
        self._unsettled.setdefault(waiter.channel, set()).add(message.delivery_tag)
        if len(waiter.arrived) == waiter.wanted:
            self._finished.append(waiter)

    def _finish_waiters(self) -> None:
        while self._finished:
            waiter = self._finished.pop()
            if self._waiters.pop(waiter.consumer_tag, None) is None:
                continue
            channel = waiter.channel
            answer_first = waiter.long_poll and not waiter.auto_ack
            if not answer_first:
                channel.basic_cancel(waiter.consumer_tag)  # what arrives meanwhile counts
            if waiter.auto_ack and waiter.arrived:
                tags = [m.delivery_tag for m in waiter.arrived]
                self._ack(channel, tags)
                self._unsettled[channel].difference_update(tags)
            waiter.done.set_result(
                [
                    self._lease(
                        waiter.subscription, channel, m, waiter.lease_seconds, waiter.auto_ack
                    )
                    for m in waiter.arrived
                ]
            )
            if answer_first:
                channel.basic_cancel(waiter.consumer_tag)

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            deadline, _, what = heapq.heappop(self._timers)
            if isinstance(what, _Waiter):
                if what.consumer_tag in self._waiters:
                    self._finished.append(what)
                continue
            lease = self._leases.get(what)
            if lease is not None and lease.deadline == deadline:
                self._forget(what, lease)
                lease.channel.basic_reject(lease.delivery_tag, requeue=True)

    def settle(
        self, name: str, receipts: Sequence[str], mode: str, lease_seconds: float
    ) -> ReceiptOutcome:
        self._run_timers()
        channel = self._channel(name)
        unknown = []
        now = time.monotonic()
        acked: dict[amqp.Channel, list[int]] = {}
        for receipt in receipts:
            lease = self._leases.get(receipt)
            if lease is None or lease.subscription != name:
                unknown.append(receipt)
                continue
            if mode == "extend":
                lease.deadline = now + lease_seconds
                heapq.heappush(self._timers, (lease.deadline, next(self._tie), receipt))
                continue
            if mode == "ack":
                acked.setdefault(lease.channel, []).append(lease.delivery_tag)
            else:
                lease.channel.basic_reject(lease.delivery_tag, requeue=mode == "requeue")
            self._forget(receipt, lease)
        for held, tags in acked.items():
            self._ack(held, tags)
        # A round trip on the channel: acks have no answer, so this one tells that the
        # broker took them, and that the subscription exists (NotFound otherwise).
        channel.queue_declare(name, passive=True)
        return ReceiptOutcome(len(receipts) - len(unknown), unknown)

    def _ack(self, channel: amqp.Channel, tags: list[int]) -> None:
        """One frame when the tags are every unsettled one up to the highest of them."""
        highest = max(tags)
        acking = set(tags)
        unsettled = self._unsettled.get(channel, set())
        if not any(tag < highest and tag not in acking for tag in unsettled):
            channel.basic_ack(highest, multiple=True)
            return
        for tag in tags:
            channel.basic_ack(tag)


def _queue_in(error_text: str) -> str:
    """The queue name in "NOT_FOUND - no queue 'x' in vhost '/'"."""
    start = error_text.find("'")
    end = error_text.find("'", start + 1)
    return error_text[start + 1 : end] if 0 <= start < end else ""
