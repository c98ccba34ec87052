import re

import pytest

from adapters.redis import amqp_pattern_regex
from tests.conformance.test_routing import MATCHES

EXTRA = [("a.#", "a.", True), ("#.a", ".a", True), ("a.*", "ab", False), ("a", "a\n", False)]


@pytest.mark.parametrize(("pattern", "key", "matches"), MATCHES + EXTRA)
def test_kombu_reads_the_binding_as_rabbitmq_would(pattern: str, key: str, matches: bool) -> None:
    assert bool(re.match(amqp_pattern_regex(pattern), key)) is matches
