"""The core below the port: validation, settings, registry, the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from adapters.memory import MemoryBroker
from messaging.cli import main
from messaging.errors import ConfigurationError, InvalidInput, UnknownBrokerScheme
from messaging.model import OutgoingMessage
from messaging.registry import create_broker
from messaging.service import MessagingService
from messaging.settings import Settings, mask_password


@pytest.fixture
def service() -> MessagingService:
    return MessagingService(MemoryBroker())


def fields_of(call) -> dict[str, str]:
    with pytest.raises(InvalidInput) as raised:
        call()
    return raised.value.fields


def test_publish_names_every_bad_field(service: MessagingService) -> None:
    bad = [
        OutgoingMessage.text("a", key="k" * 256),
        OutgoingMessage.text("b", headers={"x-messaging-id": "1"}),
        OutgoingMessage.text("c", headers={"n": None}),  # type: ignore[dict-item]
        OutgoingMessage.text("d", id="i" * 129),
    ]

    assert set(fields_of(lambda: service.publish("bad topic", bad))) == {
        "topic",
        "messages[0].key",
        "messages[1].headers",
        "messages[2].headers",
        "messages[3].id",
    }


@pytest.mark.parametrize("count", [0, 1001])
def test_publish_batch_size_is_bounded(service: MessagingService, count: int) -> None:
    messages = [OutgoingMessage.text("x")] * count
    assert "messages" in fields_of(lambda: service.publish("t", messages))


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 129, "amq.topic", "é"])
def test_names_follow_the_contract(service: MessagingService, name: str) -> None:
    assert set(fields_of(lambda: service.create_subscription(name, name))) == {"name", "topic"}


def test_pull_ranges(service: MessagingService) -> None:
    service.create_subscription("s", "t")
    assert set(
        fields_of(
            lambda: service.pull(
                "s", max_messages=0, wait_seconds=21, lease_seconds=0, auto_ack="no"
            )  # type: ignore[arg-type]
        )
    ) == {"max_messages", "wait_seconds", "lease_seconds", "auto_ack"}
    assert "max_messages" in fields_of(lambda: service.pull("s", max_messages=True))


def test_receipts_must_be_a_list_of_strings(service: MessagingService) -> None:
    service.create_subscription("s", "t")
    for receipts in ([], "abc", [1], ["r"] * 1001):
        assert "receipts" in fields_of(lambda: service.ack("s", receipts))  # noqa: B023


def test_dead_letter_name_must_fit(service: MessagingService) -> None:
    name = "n" * 120
    assert "name" in fields_of(lambda: service.create_subscription(name, "t", dead_letter=True))


def test_key_defaults_to_topic_and_id_to_a_uuid(service: MessagingService) -> None:
    service.create_subscription("s", "orders")
    [message_id] = service.publish("orders", [OutgoingMessage.text("x")]).ids
    [message] = service.pull("s")
    assert (message.key, message.id) == ("orders", message_id)
    assert len(message_id) == 36


def test_memory_brokers_share_nothing() -> None:
    first, second = MessagingService(MemoryBroker()), MessagingService(MemoryBroker())
    first.create_subscription("s", "t")
    second.create_subscription("s", "t")
    first.publish("t", [OutgoingMessage.text("only in first")])
    assert second.pull("s") == []
    assert len(first.pull("s")) == 1


def test_closing_the_memory_broker_gives_leased_messages_back() -> None:
    broker = MemoryBroker()
    service = MessagingService(broker)
    service.create_subscription("s", "t")
    service.publish("t", [OutgoingMessage.text("x")])
    service.pull("s", lease_seconds=600)
    broker.close()
    assert service.get_subscription("s").depth == 1


def test_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "MESSAGING_BROKER_URL": "redis://localhost:6379/0",
            "MESSAGING_API_TOKENS": "a, b,,",
            "MESSAGING_MAX_BODY_BYTES": "10",
            "MESSAGING_HOST": "0.0.0.0",
            "MESSAGING_PORT": "9000",
        }
    )
    assert settings == Settings("redis://localhost:6379/0", ("a", "b"), 10, "0.0.0.0", 9000)
    assert Settings.from_env({}) == Settings()
    with pytest.raises(ConfigurationError, match="MESSAGING_PORT"):
        Settings.from_env({"MESSAGING_PORT": "http"})


def test_passwords_are_masked() -> None:
    assert mask_password("amqp://guest:secret@host:5672/") == "amqp://guest:***@host:5672/"
    assert mask_password("redis://host:6379/0") == "redis://host:6379/0"


def test_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(UnknownBrokerScheme) as raised:
        create_broker("nope://x")
    assert str(raised.value) == (
        "no adapter for 'nope://'; known: amqp://, amqps://, memory://, redis://, rediss://"
    )


def test_command_line_stops_on_unknown_scheme_with_status_2() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "messaging.cli", "health"],
        env={"MESSAGING_BROKER_URL": "nope://x", "PATH": ""},
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 2
    assert finished.stderr == (
        "messaging: no adapter for 'nope://'; "
        "known: amqp://, amqps://, memory://, redis://, rediss://\n"
    )
    assert "Traceback" not in finished.stdout


def test_command_line_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--help"])
    assert raised.value.code == 0
    assert "serve" in capsys.readouterr().out


def test_health_on_memory(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("MESSAGING_BROKER_URL", "memory://")
    assert main(["health"]) == 0
    assert capsys.readouterr().out == "memory at memory://: ok\n"
