"""The benchmark runs end to end with tiny counts (its numbers are not checked here)."""

from __future__ import annotations

import subprocess
import sys

from tests.backends import reachable_url


def test_bench_prints_its_table() -> None:
    reachable_url("redis")
    reachable_url("rabbitmq")
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--messages", "1000", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    table = finished.stdout
    assert "cores shared by client, gateway and broker" in table
    for broker in ("memory", "redis", "rabbitmq"):
        assert f"{broker}: HTTP pull 100 + ack (msg/s)" in table
        assert f"{broker}: gateway peak RSS (MB)" in table
    assert "rabbitmq: raw pika publish, confirmed per 1000 (msg/s)" in table
    assert "redis: raw redis-py pipelined LPUSH, 1000 (msg/s)" in table
