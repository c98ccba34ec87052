import pytest

from messaging.routing import topic_matches
from tests.conformance.test_routing import MATCHES


@pytest.mark.parametrize(("pattern", "key", "matches"), MATCHES)
def test_topic_matches(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches
