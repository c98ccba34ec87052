"""schemathesis against the app in-process: no 500, no answer that breaks api/openapi.yaml,
no schema-violating request accepted, auth enforced."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    negative_data_rejection,
    positive_data_acceptance,
    unsupported_method,
)

from adapters.memory import MemoryBroker
from api.app import create_app
from messaging.service import MessagingService
from messaging.settings import Settings

TOKEN = "schema-token"
schema = schemathesis.openapi.from_path(Path(__file__).parents[2] / "api" / "openapi.yaml")
schema.app = create_app(MessagingService(MemoryBroker()), Settings(api_tokens=(TOKEN,)))


def _valid_wait(value: object) -> bool:
    try:
        return not isinstance(value, bool) and 0 <= float(value) <= 20  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


@schema.parametrize()
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_answers_follow_the_schema(case: schemathesis.Case) -> None:
    # A generated long poll on an empty subscription would wait up to 20 s for nothing;
    # a valid wait becomes 0, an invalid one stays to be rejected.
    for fields in (case.query, case.body):
        if isinstance(fields, dict) and _valid_wait(fields.get("wait_seconds")):
            fields["wait_seconds"] = 0
    # Methods no HTTP spec defines (QUERY, ...) get 405 without an Allow header.
    excluded = [unsupported_method]
    if case.operation.path == "/publish_message":
        # `message` is required in the body or else in the query: OpenAPI cannot say "or";
        # and a form field is text whatever type the schema gives it.
        excluded += [positive_data_acceptance, negative_data_rejection]
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, excluded_checks=excluded)
