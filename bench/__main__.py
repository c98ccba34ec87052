"""``python -m bench`` (``make bench``): the gateway against the raw clients, one table.

Client, gateway and broker share this machine's cores; the table says how many.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from . import gateway, inprocess, raw

BROKER_URLS = {
    "memory": "memory://",
    "redis": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "rabbitmq": os.environ.get("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--brokers", default="memory,redis,rabbitmq")
    parser.add_argument("--messages", type=int, default=20000, help="per measurement")
    parser.add_argument("--seconds", type=float, default=5, help="single-publish run")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    args = parser.parse_args(argv)
    brokers = [b for b in args.brokers.split(",") if b]
    count = args.messages
    rows: list[tuple[str, str, str, str]] = []

    def row(what: str, value: str, baseline: str = "", ratio: str = "") -> None:
        rows.append((what, value, baseline, ratio))
        print(f"  {what}: {value}", file=sys.stderr, flush=True)

    baselines: dict[str, tuple[float, float]] = {}
    if "rabbitmq" in brokers:
        baselines["rabbitmq"] = raw.pika_publish_and_consume(BROKER_URLS["rabbitmq"], count, 1000)
    if "redis" in brokers:
        baselines["redis"] = raw.redis_push_and_pop(BROKER_URLS["redis"], count, 1000, 100)
    names = {
        "rabbitmq": ("pika publish, confirmed per 1000", "pika consume + ack, prefetch 100"),
        "redis": ("redis-py pipelined LPUSH, 1000", "redis-py pipelined RPOP, 100"),
    }
    for broker, (publish_rate, consume_rate) in baselines.items():
        row(f"{broker}: raw {names[broker][0]} (msg/s)", f"{publish_rate:,.0f}")
        row(f"{broker}: raw {names[broker][1]} (msg/s)", f"{consume_rate:,.0f}")

    for broker in brokers:
        url = BROKER_URLS[broker]
        publish_rate, pull_rate = inprocess.publish_and_pull(url, count, 1000, 100)
        base = baselines.get(broker)
        row(
            f"{broker}: adapter batch publish, 1000 (msg/s)",
            f"{publish_rate:,.0f}",
            *_versus(publish_rate, base[0] if base else None),
        )
        row(
            f"{broker}: adapter pull 100 + ack (msg/s)",
            f"{pull_rate:,.0f}",
            *_versus(pull_rate, base[1] if base else None),
        )
        results = gateway.measure(url, args.clients, count, args.seconds)
        row(
            f"{broker}: HTTP single publish (req/s, {results.single_publish_tool})",
            f"{results.single_publish_rps:,.0f}",
        )
        row(
            f"{broker}: HTTP batch publish, 1000/request (msg/s)",
            f"{results.batch_publish_mps:,.0f}",
            *_versus(results.batch_publish_mps, base[0] if base else None),
        )
        row(
            f"{broker}: HTTP pull 100 + ack (msg/s)",
            f"{results.pull_ack_mps:,.0f}",
            *_versus(results.pull_ack_mps, base[1] if base else None),
        )
        wake = sorted(results.wake_ms)
        p50 = statistics.median(wake)
        p99 = wake[min(len(wake) - 1, int(len(wake) * 0.99))]
        row(f"{broker}: HTTP publish -> long poll wake p50 / p99 (ms)", f"{p50:.2f} / {p99:.2f}")
        row(f"{broker}: gateway peak RSS (MB)", f"{results.peak_rss_mb:.1f}")

    print(
        f"\nmachine: {os.cpu_count()} cores shared by client, gateway and broker; "
        f"{count} messages per measurement, {args.clients} client processes\n"
    )
    widths = [max(len(r[i]) for r in [*rows, HEADER]) for i in range(4)]
    for line in [HEADER, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
    return 0


HEADER = ("measurement", "value", "raw client", "ratio")


def _versus(value: float, baseline: float | None) -> tuple[str, str]:
    if not baseline:
        return "", ""
    return f"{baseline:,.0f}", f"{value / baseline:.2f}x"


if __name__ == "__main__":
    sys.exit(main())
