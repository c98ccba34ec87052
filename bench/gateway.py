"""The gateway over HTTP: ``messaging serve`` in a subprocess, loaded from other processes."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .raw import PAYLOAD

TEXT = PAYLOAD.decode()


class Gateway:
    def __init__(self, broker_url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "messaging.cli", "serve"],
            env={**os.environ, "MESSAGING_BROKER_URL": broker_url, "MESSAGING_PORT": "0"},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.base = line.split()[2]
        parts = urlsplit(self.base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def peak_rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.communicate(timeout=40)


def _call(connection: http.client.HTTPConnection, method: str, path: str, body: Any) -> Any:
    data = json.dumps(body) if body is not None else None
    connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
    answer = connection.getresponse()
    raw = answer.read()
    if answer.status >= 300:
        raise RuntimeError(f"{method} {path}: {answer.status} {raw[:200]!r}")
    return json.loads(raw) if raw else None


def _publish_worker(host: str, port: int, topic: str, requests: int, batch: int) -> None:
    connection = http.client.HTTPConnection(host, port)
    body = {"messages": [{"text": TEXT}] * batch} if batch > 1 else {"text": TEXT}
    for _ in range(requests):
        _call(connection, "POST", f"/v1/topics/{topic}/messages", body)


def _pull_worker(host: str, port: int, name: str, batch: int) -> int:
    connection = http.client.HTTPConnection(host, port)
    done = 0
    while True:
        pulled = _call(
            connection, "POST", f"/v1/subscriptions/{name}/pull", {"max_messages": batch}
        )["messages"]
        if not pulled:
            return done
        _call(
            connection,
            "POST",
            f"/v1/subscriptions/{name}/ack",
            {"receipts": [m["receipt"] for m in pulled]},
        )
        done += len(pulled)


@dataclass
class GatewayResults:
    single_publish_rps: float = 0.0
    single_publish_tool: str = ""
    batch_publish_mps: float = 0.0
    pull_ack_mps: float = 0.0
    wake_ms: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0


def measure(broker_url: str, clients: int, scale: int, seconds: float) -> GatewayResults:
    results = GatewayResults()
    gateway = Gateway(broker_url)
    try:
        admin = http.client.HTTPConnection(gateway.host, gateway.port)
        name = f"bench-{uuid.uuid4().hex[:8]}"
        _call(admin, "PUT", f"/v1/subscriptions/{name}", {"topic": name})
        results.single_publish_rps, results.single_publish_tool = _single_publishes(
            gateway, name, clients, seconds
        )
        _drain(admin, name)
        with ProcessPoolExecutor(clients) as pool:
            requests = max(1, scale // 1000 // clients)
            started = time.perf_counter()
            list(pool.map(_publish_worker, *_spread(gateway, name, clients, requests, 1000)))
            results.batch_publish_mps = requests * clients * 1000 / (time.perf_counter() - started)
            started = time.perf_counter()
            pulled = sum(
                pool.map(
                    _pull_worker,
                    [gateway.host] * clients,
                    [gateway.port] * clients,
                    [name] * clients,
                    [100] * clients,
                )
            )
            results.pull_ack_mps = pulled / (time.perf_counter() - started)
        results.wake_ms = _wake_latencies(gateway, name, max(20, scale // 500))
        results.peak_rss_mb = gateway.peak_rss_mb()
        _call(admin, "DELETE", f"/v1/subscriptions/{name}", None)
    finally:
        gateway.stop()
    return results


def _spread(gateway: Gateway, topic: str, clients: int, requests: int, batch: int) -> list[list]:
    return [
        [gateway.host] * clients,
        [gateway.port] * clients,
        [topic] * clients,
        [requests] * clients,
        [batch] * clients,
    ]


def _drain(connection: http.client.HTTPConnection, name: str) -> None:
    path = f"/v1/subscriptions/{name}/pull"
    while _call(connection, "POST", path, {"max_messages": 1000, "auto_ack": True})["messages"]:
        pass


def _single_publishes(
    gateway: Gateway, topic: str, clients: int, seconds: float
) -> tuple[float, str]:
    """Requests/s of one-message publishes: wrk when installed, else client processes."""
    wrk = shutil.which("wrk")
    if wrk:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(
                'wrk.method = "POST"\n'
                f"wrk.body = {json.dumps(json.dumps({'text': TEXT}))}\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
        finished = subprocess.run(
            [
                wrk,
                "-t2",
                "-c16",
                f"-d{max(1, int(seconds))}s",
                "-s",
                script.name,
                f"{gateway.base}/v1/topics/{topic}/messages",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        os.unlink(script.name)
        for line in finished.stdout.splitlines():
            if line.startswith("Requests/sec:"):
                return float(line.split()[1]), "wrk -t2 -c16"
    requests = max(50, int(seconds * 500))
    with ProcessPoolExecutor(clients) as pool:
        started = time.perf_counter()
        list(pool.map(_publish_worker, *_spread(gateway, topic, clients, requests, 1)))
        return requests * clients / (time.perf_counter() - started), f"{clients} processes"


def _wake_latencies(gateway: Gateway, name: str, rounds: int) -> list[float]:
    """Milliseconds from sending a publish to the answer of a long poll waiting for it."""
    poller = http.client.HTTPConnection(gateway.host, gateway.port)
    publisher = http.client.HTTPConnection(gateway.host, gateway.port)
    path = f"/v1/subscriptions/{name}/pull"
    answer_at = [0.0]

    def poll() -> None:
        _call(poller, "POST", path, {"wait_seconds": 10, "auto_ack": True})
        answer_at[0] = time.perf_counter()

    latencies = []
    for _ in range(rounds):
        waiter = threading.Thread(target=poll)
        waiter.start()
        time.sleep(0.02)  # let the poll reach the gateway and start waiting
        sent_at = time.perf_counter()
        _call(publisher, "POST", f"/v1/topics/{name}/messages", {"text": "wake"})
        waiter.join(15)
        latencies.append((answer_at[0] - sent_at) * 1000)
    return latencies
