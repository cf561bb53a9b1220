from aiokafka.partitioner import DefaultPartitioner

from ioc.topics import Topics
from streams.kafka import envelopes, group_by_partition, partition_for, topic_layout


def test_partitions_match_kafkas_default_partitioner() -> None:
    parts = list(range(6))
    for key in ("H01.00166-260316-000001", "D1", "Đăng ký", "x" * 100):
        assert partition_for(key, 6) == DefaultPartitioner()(key.encode(), parts, parts)


def test_lines_are_grouped_by_their_keys_partition() -> None:
    groups = group_by_partition([("a", b"1"), ("b", b"2"), ("a", b"3")], 4)
    assert groups[partition_for("a", 4)][:2] in ([b"1", b"3"], [b"1", b"2"])
    assert sum(len(v) for v in groups.values()) == 3


def test_envelopes_stay_under_the_limit_and_keep_every_line() -> None:
    lines = [bytes([65 + i % 26]) * 300 for i in range(100)]
    out = envelopes(lines, limit=1000)
    assert all(len(e) <= 1000 for e in out)
    assert [line for e in out for line in e.split(b"\n")] == lines


def test_update_topics_have_one_partition() -> None:
    layout = topic_layout(Topics("x."), 4, 2)
    assert layout == {
        "x.procedure-events": 4,
        "x.sensor-readings": 2,
        "x.kpi-updates": 1,
        "x.alerts": 4,
        "x.dead-letters": 1,
    }
