"""The ``messaging`` command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import ConfigurationError, MessagingError
from .registry import create_broker, known_schemes
from .settings import Settings, mask_password


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="messaging",
        description="A broker-agnostic messaging gateway. The broker is chosen by "
        f"MESSAGING_BROKER_URL ({', '.join(s + '://' for s in known_schemes())}).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="serve the HTTP API (MESSAGING_HOST, MESSAGING_PORT)")
    commands.add_parser("health", help="connect to the broker and say whether it answers")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        settings = Settings.from_env()
        if args.command == "serve":
            server = importlib.import_module("api.server")  # hug stays inside api/
            status: int = server.serve(settings)
            return status
        return _health(settings)
    except ConfigurationError as error:
        print(f"messaging: {error.message}", file=sys.stderr)
        return 2


def _health(settings: Settings) -> int:
    broker = create_broker(settings.broker_url)
    try:
        broker.check_health()
    except MessagingError as error:
        print(f"{broker.kind} at {mask_password(settings.broker_url)}: {error.message}")
        return 1
    finally:
        broker.close()
    print(f"{broker.kind} at {mask_password(settings.broker_url)}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
