"""`headwater._ids`: the fast time-ordered UUID strings the engine gives runs and operations."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest
from headwater._ids import uuid7_str


def test_ids_are_canonical_time_ordered_uuids() -> None:
    before = time.time_ns() // 1_000_000
    for _ in range(2000):
        text = uuid7_str()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert before <= parsed.int >> 80 <= time.time_ns() // 1_000_000  # its millisecond


def test_ids_made_later_sort_later() -> None:
    first = uuid7_str()
    time.sleep(0.002)
    assert uuid7_str() > first


def test_ids_do_not_repeat() -> None:
    assert len({uuid7_str() for _ in range(10000)}) == 10000


def test_threads_never_share_ids() -> None:
    seen: list[list[str]] = [[] for _ in range(4)]

    def take(into: list[str]) -> None:
        into.extend(uuid7_str() for _ in range(3000))

    threads = [threading.Thread(target=take, args=(ids,)) for ids in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [text for ids in seen for text in ids]
    assert len(set(every)) == len(every) == 12000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_forked_child_does_not_repeat_its_parents_next_ids() -> None:
    uuid7_str()  # the parent now holds unused random bytes that the child inherits
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next ids, then leave without running any cleanup
        os.close(read)
        os.write(write, " ".join(uuid7_str() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_ids = pipe.read().split()
    os.waitpid(pid, 0)
    parent_ids = [uuid7_str() for _ in range(10)]
    assert len(child_ids) == 10
    assert not set(child_ids) & set(parent_ids)
