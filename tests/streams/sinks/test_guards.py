"""The checks a worker makes before it touches a database's state."""

from __future__ import annotations

import pytest

from streams.sinks.guards import TopicMismatch, bind_topic
from streams.sinks.schema import migrate

pytestmark = pytest.mark.integration


def test_a_database_is_bound_to_one_procedure_topic(database_url: str) -> None:
    migrate(database_url)
    bind_topic(database_url, "a.procedure-events", 4)
    bind_topic(database_url, "a.procedure-events", 4)  # the same worker again
    for topic, partitions in (("b.procedure-events", 4), ("a.procedure-events", 8)):
        with pytest.raises(TopicMismatch, match=r"'a\.procedure-events' with 4 partitions"):
            bind_topic(database_url, topic, partitions)
