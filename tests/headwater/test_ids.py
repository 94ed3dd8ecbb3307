"""Fast time-ordered UUID strings: the SDK's (`headwater._ids`, for runs and operations) and the
service's own (`headwater_server.storage.values.new_id`, for states and runs it creates), built
alike but apart, since the service imports nothing from the SDK but its generated stubs."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from headwater._ids import uuid7_str
from headwater_server.storage.values import new_id

makers = pytest.mark.parametrize("make", [uuid7_str, new_id], ids=["sdk", "service"])


@makers
def test_ids_are_canonical_time_ordered_uuids(make: Callable[[], str]) -> None:
    before = time.time_ns() // 1_000_000
    for _ in range(2000):
        text = make()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert before <= parsed.int >> 80 <= time.time_ns() // 1_000_000  # its millisecond


@makers
def test_ids_made_later_sort_later(make: Callable[[], str]) -> None:
    first = make()
    time.sleep(0.002)
    assert make() > first


@makers
def test_ids_do_not_repeat(make: Callable[[], str]) -> None:
    assert len({make() for _ in range(10000)}) == 10000


@makers
def test_threads_never_share_ids(make: Callable[[], str]) -> None:
    seen: list[list[str]] = [[] for _ in range(4)]

    def take(into: list[str]) -> None:
        into.extend(make() for _ in range(3000))

    threads = [threading.Thread(target=take, args=(ids,)) for ids in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [text for ids in seen for text in ids]
    assert len(set(every)) == len(every) == 12000


@makers
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_forked_child_does_not_repeat_its_parents_next_ids(make: Callable[[], str]) -> None:
    make()  # the parent now holds unused random bytes that the child inherits
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next ids, then leave without running any cleanup
        os.close(read)
        os.write(write, " ".join(make() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_ids = pipe.read().split()
    os.waitpid(pid, 0)
    parent_ids = [make() for _ in range(10)]
    assert len(child_ids) == 10
    assert not set(child_ids) & set(parent_ids)
