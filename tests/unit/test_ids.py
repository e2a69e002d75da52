import uuid

from callcore.ids import uuid7


def test_uuid7_has_version_variant_and_the_millisecond_timestamp():
    u = uuid7(unix_ms=1_764_000_000_123)
    assert u.version == 7 and u.variant == uuid.RFC_4122
    assert u.int >> 80 == 1_764_000_000_123


def test_uuid7s_of_later_milliseconds_sort_later_and_are_unique():
    ids = [uuid7(unix_ms=1_764_000_000_000 + i) for i in range(1000)]
    assert ids == sorted(ids)
    assert len({uuid7() for _ in range(10_000)}) == 10_000
