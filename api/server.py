"""``messaging serve``: the HTTP API on waitress, one process with many threads.

One process, because receipts belong to the process that issued them and the in-memory
broker's state lives in it; threads, because a long poll holds its thread while it waits.
SIGTERM (or SIGINT) stops accepting, lets requests in flight finish, then closes the broker,
which makes every leased message deliverable again at once.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import sys
import threading
import time
from types import FrameType

from waitress.server import create_server

from messaging.registry import create_broker
from messaging.service import MessagingService
from messaging.settings import Settings, mask_password

from .app import create_app

THREADS = 128
"""Requests served at once; long polls each hold one for up to 20 s."""
DRAIN_SECONDS = 25.0
M_ARENA_MAX = -8
"""How long a stop waits for requests in flight (a long poll lasts at most 20 s)."""


def _limit_malloc_arenas() -> None:
    """glibc gives each busy thread an arena of its own, which keeps freed memory; two
    arenas serve a server whose threads mostly wait, at a fraction of the memory."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, 2)
    except (OSError, AttributeError):  # not glibc: nothing to limit
        pass


def serve(settings: Settings) -> int:
    _limit_malloc_arenas()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    broker = create_broker(settings.broker_url)
    service = MessagingService(broker)
    app = create_app(service, settings)
    server = create_server(
        app,
        host=settings.host,
        port=settings.port,
        threads=THREADS,
        connection_limit=4 * THREADS,
        channel_timeout=60,
        ident="messaging",
        clear_untrusted_proxy_headers=True,
    )
    host, port = server.getsockname()[:2]  # type: ignore[union-attr]
    processes = (
        "one process: the in-memory broker's state lives in it"
        if broker.kind == "memory"
        else "one process"
    )
    print(
        f"messaging: serving http://{host}:{port} with {THREADS} threads, "
        f"broker {broker.kind} at {mask_password(settings.broker_url)} ({processes})",
        flush=True,
    )
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        _run_until(server, stopping)
    finally:
        service.close()
    print("messaging: stopped", flush=True)
    return 0


def _run_until(server: object, stopping: threading.Event) -> None:
    """Waitress's loop, run one turn at a time so that a stop can drain it."""
    from waitress import wasyncore

    socket_map = server._map  # type: ignore[attr-defined]
    while not stopping.is_set():
        wasyncore.loop(timeout=0.2, map=socket_map, count=1)
    server.accepting = False  # type: ignore[attr-defined]
    server.del_channel()  # type: ignore[attr-defined]
    server.socket.close()  # type: ignore[attr-defined]
    dispatcher = server.task_dispatcher  # type: ignore[attr-defined]
    give_up_at = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < give_up_at:
        busy = (
            dispatcher.active_count
            or dispatcher.queue
            or any(
                getattr(channel, "total_outbufs_len", 0) or getattr(channel, "requests", None)
                for channel in list(socket_map.values())
            )
        )
        if not busy:
            break
        wasyncore.loop(timeout=0.05, map=socket_map, count=1)
    dispatcher.shutdown(cancel_pending=True, timeout=1)
    wasyncore.close_all(socket_map)


if __name__ == "__main__":
    sys.exit(serve(Settings.from_env()))
