"""Every route and every error of ../shared/API.md, in process."""

from __future__ import annotations

import base64

import pytest
from falcon import testing

from .conftest import ClientFactory


def subscribe(client: testing.TestClient, name: str, topic: str, **config: object) -> None:
    answer = client.simulate_put(f"/v1/subscriptions/{name}", json={"topic": topic, **config})
    assert answer.status_code == 201, answer.text


def pull(client: testing.TestClient, name: str, **options: object) -> list[dict]:
    answer = client.simulate_post(f"/v1/subscriptions/{name}/pull", json=options)
    assert answer.status_code == 200, answer.text
    return answer.json["messages"]


def error_of(answer: testing.Result, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert set(answer.json) == {"error"}
    return answer.json["error"]


# Publishing


def test_publish_a_batch_and_pull_it_back(client: testing.TestClient) -> None:
    subscribe(client, "s", "orders", pattern="orders.#")
    answer = client.simulate_post(
        "/v1/topics/orders/messages",
        json={
            "messages": [
                {"body": {"n": 1}, "key": "orders.eu", "headers": {"a": "b", "n": 1}},
                {"text": "hé", "id": "mine"},
                {"data_base64": "AP8=", "content_type": "image/png"},
                {"body": [1], "key": "other"},
            ]
        },
    )

    assert answer.status_code == 200
    ids = answer.json["ids"]
    assert len(ids) == 4 and ids[1] == "mine"
    assert answer.json["unroutable"] == [ids[3]]
    first, second, third = pull(client, "s")
    assert first["body"] == {"n": 1} and first["headers"] == {"a": "b", "n": 1}
    assert (first["key"], first["topic"], first["delivery_count"]) == ("orders.eu", "orders", 1)
    assert first["content_type"] == "application/json"
    assert first["published_at"].endswith("Z") and first["receipt"]
    assert (second["text"], second["key"], second["id"]) == ("hé", "orders", "mine")
    assert second["content_type"] == "text/plain; charset=utf-8"
    assert (third["data_base64"], third["content_type"]) == ("AP8=", "image/png")


def test_publish_one_message_object(client: testing.TestClient) -> None:
    subscribe(client, "s", "t")
    answer = client.simulate_post("/v1/topics/t/messages", json={"text": "one"})
    assert answer.status_code == 200 and len(answer.json["ids"]) == 1
    assert [m["text"] for m in pull(client, "s")] == ["one"]


def test_publish_a_non_json_body_as_it_is(client: testing.TestClient) -> None:
    subscribe(client, "s", "t")
    answer = client.simulate_post(
        "/v1/topics/t/messages",
        body=b"\x89PNG",
        headers={"Content-Type": "image/png"},
        params={"key": "t.img", "id": "png-1"},
    )
    assert answer.json["ids"] == ["png-1"]
    [message] = pull(client, "s")
    assert message["data_base64"] == base64.b64encode(b"\x89PNG").decode()
    assert (message["content_type"], message["key"]) == ("image/png", "t.img")
    client.simulate_post(
        "/v1/topics/t/messages", body="plain", headers={"Content-Type": "text/csv"}
    )
    assert pull(client, "s")[0]["text"] == "plain"


def test_json_that_does_not_parse_is_pulled_as_bytes(client: testing.TestClient) -> None:
    subscribe(client, "s", "t")
    client.simulate_post(
        "/v1/topics/t/messages", json={"data_base64": "e30s", "content_type": "application/json"}
    )
    assert pull(client, "s")[0]["data_base64"] == "e30s"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"body"}),
        ({"text": "a", "body": 1}, {"body"}),
        ({"text": 1}, {"text"}),
        ({"data_base64": "%%%"}, {"data_base64"}),
        ({"text": "a", "content_type": "x/y"}, {"content_type"}),
        ({"text": "a", "key": ""}, {"key"}),
        ({"text": "a", "id": "x" * 129}, {"id"}),
        ({"text": "a", "headers": {"x-messaging-id": "1"}}, {"headers"}),
        ({"text": "a", "headers": {"deep": {"no": 1}}}, {"headers"}),
        ({"text": "a", "colour": "red"}, {"colour"}),
        ({"messages": []}, {"messages"}),
        ({"messages": [{"text": "a"}, {"text": 2}]}, {"messages[1].text"}),
    ],
)
def test_publish_names_every_bad_field(client: testing.TestClient, body: dict, fields: set) -> None:
    error = error_of(client.simulate_post("/v1/topics/t/messages", json=body), 400)
    assert error["code"] == "invalid_input"
    assert set(error["fields"]) == fields


def test_publish_to_a_bad_topic_name(client: testing.TestClient) -> None:
    answer = client.simulate_post("/v1/topics/amq.x/messages", json={"text": "a"})
    assert set(error_of(answer, 400)["fields"]) == {"topic"}


def test_body_over_the_limit_is_413(make_client: ClientFactory) -> None:
    client = make_client(max_body_bytes=100)
    answer = client.simulate_post("/v1/topics/t/messages", json={"text": "x" * 200})
    assert error_of(answer, 413)["code"] == "payload_too_large"


def test_invalid_json_is_400(client: testing.TestClient) -> None:
    answer = client.simulate_post(
        "/v1/topics/t/messages", body="{nope", headers={"Content-Type": "application/json"}
    )
    assert error_of(answer, 400)["fields"] == {"body": "not valid JSON"}


# Subscriptions


def test_put_creates_then_confirms_then_conflicts(client: testing.TestClient) -> None:
    config = {"topic": "t", "pattern": "a.*", "max_deliveries": 3, "dead_letter": True}
    created = client.simulate_put("/v1/subscriptions/s", json=config)
    same = client.simulate_put("/v1/subscriptions/s", json=config)
    other = client.simulate_put("/v1/subscriptions/s", json={**config, "pattern": "#"})

    assert created.status_code == 201
    assert created.json == {"name": "s", **config, "depth": 0}
    assert (same.status_code, same.json) == (200, created.json)
    assert error_of(other, 409)["code"] == "subscription_conflict"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"topic"}),
        ({"topic": "t", "pattern": ""}, {"pattern"}),
        ({"topic": "t", "max_deliveries": -1}, {"max_deliveries"}),
        ({"topic": "t", "dead_letter": "yes"}, {"dead_letter"}),
        ({"topic": "t", "extra": 1}, {"extra"}),
        ({"topic": "bad topic"}, {"topic"}),
    ],
)
def test_put_names_bad_fields(client: testing.TestClient, body: dict, fields: set) -> None:
    answer = client.simulate_put("/v1/subscriptions/s", json=body)
    assert set(error_of(answer, 400)["fields"]) == fields


def test_get_list_and_delete(client: testing.TestClient) -> None:
    subscribe(client, "b", "t", dead_letter=True)
    subscribe(client, "a", "t")
    client.simulate_post("/v1/topics/t/messages", json={"text": "x"})

    assert client.simulate_get("/v1/subscriptions/a").json["depth"] == 1
    listed = client.simulate_get("/v1/subscriptions").json["subscriptions"]
    assert [s["name"] for s in listed] == ["a", "b", "b.dead-letter", "default"]
    assert listed[2]["topic"] is None
    deleted = client.simulate_delete("/v1/subscriptions/a")
    assert (deleted.status_code, deleted.text) == (204, "")
    assert error_of(client.simulate_get("/v1/subscriptions/a"), 404)["code"] == (
        "subscription_not_found"
    )
    assert error_of(client.simulate_delete("/v1/subscriptions/a"), 404)


def test_unknown_subscription_is_404_on_every_route(client: testing.TestClient) -> None:
    for path, body in [
        ("pull", {}),
        ("ack", {"receipts": ["r"]}),
        ("nack", {"receipts": ["r"]}),
        ("extend", {"receipts": ["r"]}),
    ]:
        answer = client.simulate_post(f"/v1/subscriptions/nope/{path}", json=body)
        assert error_of(answer, 404)["code"] == "subscription_not_found"


# Pull, ack, nack, extend


def test_pull_ack_nack_extend(client: testing.TestClient) -> None:
    subscribe(client, "s", "t", dead_letter=True)
    client.simulate_post("/v1/topics/t/messages", json={"messages": [{"text": "a"}, {"text": "b"}]})
    first, second = pull(client, "s", max_messages=10, lease_seconds=60)

    extended = client.simulate_post(
        "/v1/subscriptions/s/extend", json={"receipts": [first["receipt"], "x"], "lease_seconds": 5}
    )
    nacked = client.simulate_post(
        "/v1/subscriptions/s/nack", json={"receipts": [second["receipt"]], "requeue": True}
    )
    again = pull(client, "s", wait_seconds=1)
    acked = client.simulate_post(
        "/v1/subscriptions/s/ack", json={"receipts": [first["receipt"], again[0]["receipt"]]}
    )

    assert extended.json == {"extended": 1, "unknown": ["x"]}
    assert nacked.json == {"acked": 1, "unknown": []}
    assert (again[0]["text"], again[0]["delivery_count"]) == ("b", 2)
    assert acked.json == {"acked": 2, "unknown": []}


def test_nack_without_requeue_dead_letters(client: testing.TestClient) -> None:
    subscribe(client, "s", "t", dead_letter=True)
    client.simulate_post("/v1/topics/t/messages", json={"text": "poison", "id": "p"})
    [message] = pull(client, "s")
    client.simulate_post(
        "/v1/subscriptions/s/nack", json={"receipts": [message["receipt"]], "requeue": False}
    )
    [dead] = pull(client, "s.dead-letter")
    assert (dead["id"], dead["text"]) == ("p", "poison")


def test_auto_ack_has_no_receipt(client: testing.TestClient) -> None:
    subscribe(client, "s", "t")
    client.simulate_post("/v1/topics/t/messages", json={"text": "a"})
    [message] = pull(client, "s", auto_ack=True)
    assert "receipt" not in message
    assert pull(client, "s") == []


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"max_messages": 0}, {"max_messages"}),
        ({"max_messages": 1001}, {"max_messages"}),
        ({"wait_seconds": 21}, {"wait_seconds"}),
        ({"lease_seconds": 0.5}, {"lease_seconds"}),
        ({"lease_seconds": 43201}, {"lease_seconds"}),
        ({"auto_ack": 1}, {"auto_ack"}),
        ({"max_messages": "3", "size": 1}, {"size"}),
    ],
)
def test_pull_ranges_are_400(client: testing.TestClient, body: dict, fields: set) -> None:
    subscribe(client, "s", "t")
    answer = client.simulate_post("/v1/subscriptions/s/pull", json=body)
    assert set(error_of(answer, 400)["fields"]) == fields


def test_receipt_routes_check_their_input(client: testing.TestClient) -> None:
    subscribe(client, "s", "t")
    for path, body, field in [
        ("ack", {}, "receipts"),
        ("ack", {"receipts": "r"}, "receipts"),
        ("nack", {"receipts": ["r"], "requeue": "no"}, "requeue"),
        ("extend", {"receipts": ["r"], "lease_seconds": 0}, "lease_seconds"),
    ]:
        answer = client.simulate_post(f"/v1/subscriptions/s/{path}", json=body)
        assert field in error_of(answer, 400)["fields"]


def test_non_json_body_on_a_json_route_is_415(client: testing.TestClient) -> None:
    subscribe(client, "s", "t")
    answer = client.simulate_post(
        "/v1/subscriptions/s/pull", body="max=1", headers={"Content-Type": "text/plain"}
    )
    assert error_of(answer, 415)["code"] == "unsupported_media_type"


# Auth, health, metrics, unknown routes


def test_tokens_guard_every_route_but_health(make_client: ClientFactory) -> None:
    client = make_client(api_tokens=("t1", "t2"))
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic t1"}):
        answer = client.simulate_get("/v1/subscriptions", headers=headers)
        assert error_of(answer, 401)["code"] == "unauthorized"
        assert answer.headers["www-authenticate"].startswith("Bearer")
    for token in ("t1", "t2"):
        answer = client.simulate_get(
            "/v1/subscriptions", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200
    assert client.simulate_get("/v1/health").status_code == 200
    assert client.simulate_get("/metrics").status_code == 401


def test_health_and_metrics(client: testing.TestClient) -> None:
    subscribe(client, "s", "t", dead_letter=True)
    client.simulate_post("/v1/topics/t/messages", json={"text": "a"})
    pull(client, "s")

    assert client.simulate_get("/v1/health").json == {"status": "ok", "broker": "memory"}
    metrics = client.simulate_get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert "messaging_published_messages_total 1.0" in text
    assert 'messaging_pulled_messages_total{mode="leased"} 1.0' in text
    assert 'messaging_subscription_depth{name="s"} 0.0' in text
    assert 'messaging_dead_letters{name="s.dead-letter"} 0.0' in text
    pull_latency = 'method="POST",route="/v1/subscriptions/{name}/pull",status="200"'
    assert f"messaging_http_request_seconds_count{{{pull_latency}}} 1.0" in text


def test_unreachable_broker_is_503_with_retry_after(make_client: ClientFactory) -> None:
    client = make_client("redis://127.0.0.1:1/0")
    health = client.simulate_get("/v1/health")
    assert (health.status_code, health.json["status"], health.json["broker"]) == (
        503,
        "unavailable",
        "redis",
    )
    assert health.headers["retry-after"] == "1"
    answer = client.simulate_post("/v1/topics/t/messages", json={"text": "a"})
    assert error_of(answer, 503)["code"] == "broker_unavailable"
    assert answer.headers["retry-after"] == "1"


def test_unknown_route_and_method_are_json(client: testing.TestClient) -> None:
    assert error_of(client.simulate_get("/v2/nothing"), 404)["code"] == "not_found"
    assert error_of(client.simulate_patch("/v1/subscriptions/s"), 405)["code"] == (
        "method_not_allowed"
    )


def test_query_cannot_override_a_path_name(client: testing.TestClient) -> None:
    answer = client.simulate_put(
        "/v1/subscriptions/real", params={"name": "other"}, json={"topic": "t"}
    )
    assert set(error_of(answer, 400)["fields"]) == {"?name"}


# The blog's two routes


def test_seed_publish_in_every_form_and_consume(client: testing.TestClient) -> None:
    client.simulate_post("/publish_message", params={"message": "query"})
    client.simulate_post(
        "/publish_message",
        body="message=form",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    client.simulate_post(
        "/publish_message",
        body=(
            b'--B\r\nContent-Disposition: form-data; name="message"\r\n\r\nmultipart\r\n--B--\r\n'
        ),
        headers={"Content-Type": "multipart/form-data; boundary=B"},
    )
    client.simulate_post("/publish_message", json={"message": "json"})

    answer = client.simulate_get("/consume_messages")

    assert answer.status_code == 200
    assert answer.json == ["query", "form", "multipart", "json"]
    assert client.simulate_get("/consume_messages").json == []


def test_seed_consume_returns_at_most_max_and_never_waits_for_a_full_batch(
    client: testing.TestClient,
) -> None:
    for n in range(12):
        client.simulate_post("/publish_message", params={"message": str(n)})
    assert len(client.simulate_get("/consume_messages").json) == 10
    assert client.simulate_get("/consume_messages", params={"max_messages": "5"}).json == [
        "10",
        "11",
    ]


def test_seed_routes_check_their_input(client: testing.TestClient) -> None:
    assert error_of(client.simulate_post("/publish_message"), 400)["fields"] == {
        "message": "required"
    }
    assert (
        "message"
        in error_of(client.simulate_post("/publish_message", json={"message": 3}), 400)["fields"]
    )
    answer = client.simulate_get("/consume_messages", params={"max_messages": "ten"})
    assert "max_messages" in error_of(answer, 400)["fields"]
    answer = client.simulate_get("/consume_messages", params={"wait_seconds": "30"})
    assert "wait_seconds" in error_of(answer, 400)["fields"]


def test_bad_input_never_loses_a_stored_message(client: testing.TestClient) -> None:
    subscribe(client, "s", "t")
    client.simulate_post("/v1/topics/t/messages", json={"text": "keep me"})
    for body in ("{", "[]", '{"max_messages": -1}', '{"max_messages": 1e999}', "\xff"):
        answer = client.simulate_post(
            "/v1/subscriptions/s/pull", body=body, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 400
    assert [m["text"] for m in pull(client, "s")] == ["keep me"]
