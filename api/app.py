"""The HTTP API on hug, as ../shared/API.md says: parse, call the service, map errors."""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

import falcon
import hug
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from messaging.errors import (
    BrokerUnavailable,
    InvalidInput,
    MessagingError,
    PayloadTooLarge,
    SubscriptionConflict,
    Unauthorized,
    UnsupportedMediaType,
)
from messaging.model import OutgoingMessage, SubscriptionInfo
from messaging.payloads import (
    decode_payload,
    is_json,
    media_type,
    message_from_json,
    message_to_json,
)
from messaging.service import MessagingService, id_problem, key_problem
from messaging.settings import Settings

from .metrics import Metrics

log = logging.getLogger("messaging.api")

DEFAULT = "default"
"""The topic and subscription of the seed routes /publish_message and /consume_messages."""

SUBSCRIPTION_FIELDS = {"topic", "pattern", "max_deliveries", "dead_letter"}
PULL_FIELDS = {"max_messages", "wait_seconds", "lease_seconds", "auto_ack"}


QUERY_PARAMETERS = {
    "/v1/topics/{topic}/messages": {"key", "id"},
    "/publish_message": {"message"},
    "/consume_messages": {"max_messages", "wait_seconds"},
}


class Gateway:
    """What the routes share: the service, settings and metrics of one process."""

    def __init__(self, service: MessagingService, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.metrics = Metrics(service)
        self._default_ready = False

    def ensure_default_subscription(self) -> None:
        """The seed routes' subscription exists from startup, so nothing is lost before the
        first consume; if the broker was down at startup, the first seed call makes it."""
        if self._default_ready:
            return
        try:
            self.service.create_subscription(DEFAULT, DEFAULT)
        except SubscriptionConflict:
            log.warning("subscription 'default' exists with another configuration; kept as is")
        self._default_ready = True

    # Reading requests

    def raw_body(self, request: falcon.Request) -> bytes:
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        data: bytes = request.bounded_stream.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        return data

    def json_object(self, request: falcon.Request, allowed: set[str]) -> dict[str, Any]:
        """The body as a JSON object with only ``allowed`` fields; empty means {}."""
        data = self.raw_body(request)
        if not data.strip():
            return {}
        if request.content_type and not is_json(request.content_type):
            raise UnsupportedMediaType("send application/json")
        fields = _parse_json(data)
        if not isinstance(fields, dict):
            raise InvalidInput({"body": "must be a JSON object"})
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise InvalidInput({name: "unknown field" for name in unknown})
        return fields


def _parse_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidInput({"body": "not valid JSON"}) from None


def _path_name(request: falcon.Request, index: int) -> str:
    """A name from the path itself: hug lets query parameters override path parameters."""
    parts = request.path.split("/")
    return parts[index] if len(parts) > index else ""


def subscription_json(info: SubscriptionInfo) -> dict[str, Any]:
    config = info.config
    return {
        "name": config.name,
        "topic": config.topic,
        "pattern": config.pattern,
        "max_deliveries": config.max_deliveries,
        "dead_letter": config.dead_letter,
        "depth": info.depth,
    }


def _receipts_outcome(done_name: str, done: int, unknown: list[str]) -> dict[str, Any]:
    return {done_name: done, "unknown": unknown}


def create_app(service: MessagingService, settings: Settings) -> Callable[..., Any]:
    """The WSGI application serving ``service``."""
    gateway = Gateway(service, settings)
    try:
        gateway.ensure_default_subscription()
    except BrokerUnavailable as error:
        log.warning("the broker is unavailable at startup (%s); will retry", error.message)
    api = hug.API(f"messaging-{uuid.uuid4().hex}")
    api.http.add_middleware(_Middleware(gateway))
    metrics = gateway.metrics

    @hug.post("/v1/topics/{topic}/messages", api=api, parse_body=False)
    def publish(request: falcon.Request, response: falcon.Response, **_: Any) -> Any:
        topic = _path_name(request, 3)
        data = gateway.raw_body(request)
        content_type = request.content_type or ""
        if content_type and not is_json(content_type):
            messages = [OutgoingMessage(payload=data, content_type=content_type)]
        else:
            messages = _messages_from_json(_parse_json(data) if data.strip() else None)
        key, message_id = _query_text(request.params, "key"), _query_text(request.params, "id")
        problems = {
            f"?{name}": problem
            for name, value, check in (("key", key, key_problem), ("id", message_id, id_problem))
            if value is not None and (problem := check(value))
        }
        if problems:
            raise InvalidInput(problems)
        messages = [
            replace(
                m,
                key=key if m.key is None else m.key,
                id=message_id if m.id is None else m.id,
            )
            for m in messages
        ]
        result = service.publish(topic, messages)
        metrics.published.inc(len(result.ids))
        metrics.unroutable.inc(len(result.unroutable))
        return {"ids": result.ids, "unroutable": result.unroutable}

    @hug.put("/v1/subscriptions/{name}", api=api, parse_body=False)
    def put_subscription(request: falcon.Request, response: falcon.Response, **_: Any) -> Any:
        fields = gateway.json_object(request, SUBSCRIPTION_FIELDS)
        if "topic" not in fields:
            raise InvalidInput({"topic": "required"})
        info, created = service.create_subscription(_path_name(request, 3), **fields)
        response.status = falcon.HTTP_201 if created else falcon.HTTP_200
        return subscription_json(info)

    @hug.get("/v1/subscriptions/{name}", api=api, parse_body=False)
    def get_subscription(request: falcon.Request, **_: Any) -> Any:
        return subscription_json(service.get_subscription(_path_name(request, 3)))

    @hug.get("/v1/subscriptions", api=api, parse_body=False)
    def list_subscriptions(**_: Any) -> Any:
        return {"subscriptions": [subscription_json(i) for i in service.list_subscriptions()]}

    @hug.delete(
        "/v1/subscriptions/{name}", api=api, parse_body=False, output=hug.output_format.text
    )
    def delete_subscription(request: falcon.Request, response: falcon.Response, **_: Any) -> Any:
        service.delete_subscription(_path_name(request, 3))
        response.status = falcon.HTTP_204
        return ""

    @hug.post("/v1/subscriptions/{name}/pull", api=api, parse_body=False)
    def pull(request: falcon.Request, **_: Any) -> Any:
        fields = gateway.json_object(request, PULL_FIELDS)
        messages = service.pull(_path_name(request, 3), **fields)
        metrics.pulled.labels("auto_ack" if fields.get("auto_ack") else "leased").inc(len(messages))
        return {"messages": [message_to_json(m) for m in messages]}

    @hug.post("/v1/subscriptions/{name}/ack", api=api, parse_body=False)
    def ack(request: falcon.Request, **_: Any) -> Any:
        fields = gateway.json_object(request, {"receipts"})
        outcome = service.ack(_path_name(request, 3), fields.get("receipts", []))
        _count_receipts(metrics, "ack", outcome.done, outcome.unknown)
        return _receipts_outcome("acked", outcome.done, outcome.unknown)

    @hug.post("/v1/subscriptions/{name}/nack", api=api, parse_body=False)
    def nack(request: falcon.Request, **_: Any) -> Any:
        fields = gateway.json_object(request, {"receipts", "requeue"})
        outcome = service.nack(
            _path_name(request, 3), fields.get("receipts", []), fields.get("requeue", True)
        )
        _count_receipts(metrics, "nack", outcome.done, outcome.unknown)
        return _receipts_outcome("acked", outcome.done, outcome.unknown)

    @hug.post("/v1/subscriptions/{name}/extend", api=api, parse_body=False)
    def extend(request: falcon.Request, **_: Any) -> Any:
        fields = gateway.json_object(request, {"receipts", "lease_seconds"})
        outcome = service.extend(
            _path_name(request, 3), fields.get("receipts", []), fields.get("lease_seconds", 30)
        )
        _count_receipts(metrics, "extend", outcome.done, outcome.unknown)
        return _receipts_outcome("extended", outcome.done, outcome.unknown)

    @hug.get("/v1/health", api=api, parse_body=False)
    def health(response: falcon.Response, **_: Any) -> Any:
        try:
            return {"status": "ok", "broker": service.health()}
        except BrokerUnavailable as error:
            response.status = falcon.HTTP_503
            response.set_header("Retry-After", str(error.retry_after_seconds))
            return {
                "status": "unavailable",
                "broker": service.broker.kind,
                "error": {"code": error.code, "message": error.message},
            }

    @hug.get("/metrics", api=api, parse_body=False, output=hug.output_format.text)
    def prometheus(response: falcon.Response, **_: Any) -> Any:
        response.content_type = CONTENT_TYPE_LATEST
        return generate_latest(metrics.registry).decode()

    @hug.post("/publish_message", api=api, parse_body=False)
    def publish_message(request: falcon.Request, **_: Any) -> Any:
        text = _seed_message(gateway, request)
        gateway.ensure_default_subscription()
        result = service.publish(DEFAULT, [OutgoingMessage.text(text)])
        metrics.published.inc(len(result.ids))
        metrics.unroutable.inc(len(result.unroutable))
        return {"ids": result.ids, "unroutable": result.unroutable}

    @hug.get("/consume_messages", api=api, parse_body=False)
    def consume_messages(request: falcon.Request, **_: Any) -> Any:
        query = request.params
        gateway.ensure_default_subscription()
        messages = service.pull(
            DEFAULT,
            max_messages=_query_number(query, "max_messages", 10, int),
            wait_seconds=_query_number(query, "wait_seconds", 0, float),
            auto_ack=True,
        )
        metrics.pulled.labels("auto_ack").inc(len(messages))
        return [decode_payload(m.content_type, m.payload)[1] for m in messages]

    app = api.http.server(default_not_found=False)
    app.add_error_handler(Exception, _unexpected_error)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(MessagingError, _messaging_error)
    app.req_options.auto_parse_qs_csv = False
    app.req_options.keep_blank_qs_values = True
    app.req_options.strip_url_path_trailing_slash = False
    wsgi_app: Callable[..., Any] = app
    return wsgi_app


def _messages_from_json(parsed: Any) -> list[OutgoingMessage]:
    errors: dict[str, str] = {}
    if isinstance(parsed, dict) and "messages" in parsed:
        extra = sorted(set(parsed) - {"messages"})
        for name in extra:
            errors[name] = "unknown field"
        listed = parsed["messages"]
        if not isinstance(listed, list) or not 1 <= len(listed) <= 1000:
            raise InvalidInput({"messages": "must be a list of 1 to 1000 messages", **errors})
        messages = [
            message_from_json(fields, f"messages[{index}].", errors)
            for index, fields in enumerate(listed)
        ]
    else:
        messages = [message_from_json(parsed, "", errors)]
    if errors:
        raise InvalidInput(errors)
    return [m for m in messages if m is not None]


def _query_text(query: Mapping[str, Any], name: str) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput({name: "give it once"})
    return value


def _query_number(query: Mapping[str, Any], name: str, default: float, kind: type) -> Any:
    raw = _query_text(query, name)
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise InvalidInput({name: f"must be a number, not {raw!r}"}) from None


_ABSENT = object()


def _seed_message(gateway: Gateway, request: falcon.Request) -> str:
    """``message`` from a form (urlencoded or multipart), a JSON object or the query."""
    data = gateway.raw_body(request)
    kind = media_type(request.content_type or "")
    found: Any = _ABSENT
    if kind == "application/x-www-form-urlencoded":
        values = parse_qs(data.decode("utf-8", "replace")).get("message")
        if values is not None:
            found = values[0] if len(values) == 1 else values
    elif kind == "multipart/form-data":
        value = _multipart_field(request, data, "message")
        if value is not None:
            found = value
    elif data.strip():
        if kind and not is_json(kind):
            raise UnsupportedMediaType(
                "send message as a form field, a JSON object or in the query"
            )
        parsed = _parse_json(data)
        if not isinstance(parsed, dict):
            raise InvalidInput({"body": "must be a JSON object"})
        found = parsed.get("message", _ABSENT)
    if found is _ABSENT:
        found = request.params.get("message", _ABSENT)
    if found is _ABSENT:
        raise InvalidInput({"message": "required"})
    if not isinstance(found, str):
        raise InvalidInput({"message": "must be a string, given once"})
    return found


def _multipart_field(request: falcon.Request, data: bytes, name: str) -> Any:
    from email.parser import BytesParser
    from email.policy import HTTP

    head = f"Content-Type: {request.content_type}\r\n\r\n".encode()
    parsed = BytesParser(policy=HTTP).parsebytes(head + data)
    if not parsed.is_multipart():
        return None
    for part in parsed.iter_parts():
        if part.get_param("name", header="content-disposition") == name:
            payload = part.get_payload(decode=True)
            return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None
    return None


def _count_receipts(metrics: Metrics, action: str, done: int, unknown: list[str]) -> None:
    metrics.settled.labels(action, "done").inc(done)
    metrics.settled.labels(action, "unknown").inc(len(unknown))


def _write_error(response: falcon.Response, status: int, code: str, message: str) -> None:
    response.status = falcon.get_http_status(status)
    response.content_type = "application/json"
    response.body = json.dumps({"error": {"code": code, "message": message}})


def _messaging_error(
    error: MessagingError, request: falcon.Request, response: falcon.Response, params: Any
) -> None:
    _write_error(response, error.status, error.code, error.message)
    if isinstance(error, InvalidInput):
        response.body = json.dumps(
            {"error": {"code": error.code, "message": error.message, "fields": error.fields}}
        )
    if isinstance(error, BrokerUnavailable):
        response.set_header("Retry-After", str(error.retry_after_seconds))
    if isinstance(error, Unauthorized):
        response.set_header("WWW-Authenticate", 'Bearer realm="messaging"')


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "invalid_input"}


def _http_error(
    error: falcon.HTTPError, request: falcon.Request, response: falcon.Response, params: Any
) -> None:
    status = int(error.status.split()[0])
    if status == 400 and request.method not in falcon.HTTP_METHODS:
        status, error.description = 405, f"no method {request.method}"
    code = _HTTP_CODES.get(status, error.title.lower().replace(" ", "_"))
    message = error.description or f"{error.title}: {request.method} {request.path}"
    _write_error(response, status, code, message)
    for name, value in (error.headers or {}).items():
        response.set_header(name, value)


def _unexpected_error(
    error: Exception, request: falcon.Request, response: falcon.Response, params: Any
) -> None:
    log.exception("unexpected error on %s %s", request.method, request.path)
    _write_error(response, 500, "internal_error", "an unexpected error; see the gateway's log")


class _Middleware:
    """Authentication and metrics for every request."""

    def __init__(self, gateway: Gateway) -> None:
        self._tokens = [t.encode() for t in gateway.settings.api_tokens]
        self._latency = gateway.metrics.requests

    def process_request(self, request: falcon.Request, response: falcon.Response) -> None:
        request.context.started = time.perf_counter()
        self._authenticate(request)

    def process_resource(
        self, request: falcon.Request, response: falcon.Response, resource: Any, params: Any
    ) -> None:
        allowed = QUERY_PARAMETERS.get(request.uri_template or "", set())
        unknown = sorted(set(request.params) - allowed)
        if unknown:
            raise InvalidInput({f"?{name}": "unknown query parameter" for name in unknown})

    def _authenticate(self, request: falcon.Request) -> None:
        if self._tokens and request.path != "/v1/health":
            given = (request.get_header("Authorization") or "").encode()
            scheme, _, token = given.partition(b" ")
            matched = False
            for known in self._tokens:  # every token compared: the time tells nothing
                matched |= hmac.compare_digest(token, known)
            if scheme.lower() != b"bearer" or not matched:
                raise Unauthorized("send Authorization: Bearer <token>")

    def process_response(
        self, request: falcon.Request, response: falcon.Response, resource: Any, succeeded: bool
    ) -> None:
        if response.status == falcon.HTTP_204:
            response.body = None
            response.delete_header("Content-Type")
        started = getattr(request.context, "started", None)
        if started is not None:
            self._latency.labels(
                request.uri_template or "unmatched", request.method, response.status.split()[0]
            ).observe(time.perf_counter() - started)
