"""``messaging serve`` for real: a subprocess on a free port, spoken to over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from messaging.registry import create_broker
from messaging.service import MessagingService
from tests.backends import delete_exchanges, reachable_url


class Server:
    def __init__(self, broker_url: str, **environ: str) -> None:
        env = {
            **os.environ,
            "MESSAGING_BROKER_URL": broker_url,
            "MESSAGING_PORT": "0",
            **environ,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "messaging.cli", "serve"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.startup_line = self.process.stdout.readline().strip()
        assert self.startup_line.startswith("messaging: serving http://"), self.startup_line
        self.base = self.startup_line.split()[2]

    def call(
        self, method: str, path: str, body: Any = None, timeout: float = 30
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                raw = answer.read()
                return answer.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=40)
        return self.process.returncode, out


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(broker_url: str = "memory://", **environ: str) -> Server:
        server = Server(broker_url, **environ)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate()


@pytest.mark.parametrize("backend", ["memory", "fakeredis", "redis", "rabbitmq"])
def test_publish_pull_ack_over_http(start_server, backend: str, fresh, used_names) -> None:
    server = start_server(reachable_url(backend))
    topic, sub = fresh("t"), fresh("s")
    try:
        assert server.call("PUT", f"/v1/subscriptions/{sub}", {"topic": topic})[0] == 201
        status, published = server.call(
            "POST",
            f"/v1/topics/{topic}/messages",
            {"messages": [{"body": {"n": 1}}, {"text": "b"}]},
        )
        assert status == 200 and published["unroutable"] == []
        status, pulled = server.call("POST", f"/v1/subscriptions/{sub}/pull", {"wait_seconds": 5})
        receipts = [m["receipt"] for m in pulled["messages"]]
        assert [m["id"] for m in pulled["messages"]] == published["ids"]
        assert server.call("POST", f"/v1/subscriptions/{sub}/ack", {"receipts": receipts}) == (
            200,
            {"acked": 2, "unknown": []},
        )
        assert server.call("GET", "/v1/health") == (
            200,
            {"status": "ok", "broker": backend.replace("fake", "")},
        )
        assert server.call("POST", "/publish_message?message=hi")[0] == 200
        assert server.call("GET", "/consume_messages") == (200, ["hi"])
    finally:
        server.call("DELETE", f"/v1/subscriptions/{sub}")
        if backend == "rabbitmq":
            delete_exchanges(used_names)
    assert server.stop()[0] == 0


def test_startup_line_names_the_url_and_masks_the_password(start_server) -> None:
    server = start_server(reachable_url("rabbitmq"))
    assert "broker rabbitmq at amqp://guest:***@127.0.0.1:5672/" in server.startup_line
    assert "guest:guest" not in server.startup_line
    memory = start_server()
    assert "one process: the in-memory broker's state lives in it" in memory.startup_line


def test_unknown_scheme_stops_startup_with_status_2() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "messaging.cli", "serve"],
        env={**os.environ, "MESSAGING_BROKER_URL": "nope://x"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert finished.returncode == 2
    assert "no adapter for 'nope://'" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_fifty_long_polls_do_not_hold_up_other_requests(start_server) -> None:
    server = start_server()
    server.call("PUT", "/v1/subscriptions/idle", {"topic": "quiet"})
    server.call("PUT", "/v1/subscriptions/busy", {"topic": "loud"})
    answers: list[int] = []

    def long_poll() -> None:
        _, body = server.call("POST", "/v1/subscriptions/idle/pull", {"wait_seconds": 20})
        answers.append(len(body["messages"]))

    polls = [threading.Thread(target=long_poll) for _ in range(50)]
    for poll in polls:
        poll.start()

    started = time.monotonic()
    assert server.call("POST", "/v1/topics/loud/messages", {"text": "now"}, timeout=5)[0] == 200
    _, pulled = server.call("POST", "/v1/subscriptions/busy/pull", {}, timeout=5)
    answered_in = time.monotonic() - started
    assert [m["text"] for m in pulled["messages"]] == ["now"]
    assert answered_in < 5  # not held behind the 20 s polls

    batch = {"messages": [{"text": str(n)} for n in range(50)]}
    server.call("POST", "/v1/topics/quiet/messages", batch)
    for poll in polls:
        poll.join(25)
    assert sum(answers) == 50 and len(answers) == 50


@pytest.mark.parametrize("backend", ["memory", "redis", "rabbitmq"])
def test_sigterm_finishes_requests_in_flight_and_gives_leases_back(
    start_server, backend: str, fresh, used_names
) -> None:
    url = reachable_url(backend)
    server = start_server(url)
    topic, sub, idle = fresh("t"), fresh("s"), fresh("idle")
    server.call("PUT", f"/v1/subscriptions/{sub}", {"topic": topic})
    server.call("PUT", f"/v1/subscriptions/{idle}", {"topic": fresh("nothing")})
    server.call("POST", f"/v1/topics/{topic}/messages", {"text": "leased"})
    _, pulled = server.call("POST", f"/v1/subscriptions/{sub}/pull", {"lease_seconds": 600})
    assert len(pulled["messages"]) == 1
    in_flight: list[int] = []
    poll = threading.Thread(
        target=lambda: in_flight.append(
            server.call("POST", f"/v1/subscriptions/{idle}/pull", {"wait_seconds": 2})[0]
        )
    )
    poll.start()
    time.sleep(0.5)  # the long poll must be in flight when the signal comes: nothing to await

    status, output = server.stop()
    poll.join(10)

    assert status == 0
    assert "messaging: stopped" in output
    assert in_flight == [200]
    if backend != "memory":  # the in-memory broker's messages end with its process
        service = MessagingService(create_broker(url))
        try:
            [again] = service.pull(sub, wait_seconds=1)
            assert (again.payload, again.delivery_count) == (b"leased", 2)
            service.ack(sub, [again.receipt])
        finally:
            for name in (sub, idle):
                service.delete_subscription(name)
            service.close()
            if backend == "rabbitmq":
                delete_exchanges(used_names)
