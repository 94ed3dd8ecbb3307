"""`headwater._ids`: the fast random UUID strings the engine gives runs and operations."""

from __future__ import annotations

import uuid

from headwater._ids import uuid4_str


def test_ids_are_canonical_random_uuids() -> None:
    for _ in range(2000):
        text = uuid4_str()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)


def test_ids_do_not_repeat() -> None:
    assert len({uuid4_str() for _ in range(10000)}) == 10000
