"""The child's half of shipping a task: what travels back, and the reachability check.

`unreachable` runs on Dask workers before anything is shipped to them; here it runs in this
process against a real embedded server (reachable) and a socket nobody listens on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import sdk_target
from headwater import Completed, Failed
from headwater._runners.child import pack, unpack, unreachable
from headwater._transport.runtime import service_address


@pytest.fixture(scope="module")
def embedded_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home: Path = tmp_path_factory.mktemp("home")
    with sdk_target(home):
        yield service_address()


def test_a_state_travels_back_with_its_result_and_the_pid() -> None:
    returned = unpack(pack(Completed(data={"rows": [1, 2]})))
    assert returned.state.is_completed()
    assert returned.state.result() == {"rows": [1, 2]}
    assert returned.pid == os.getpid()
    assert returned.lost == ""


def test_a_result_that_cannot_be_pickled_is_named_not_sent() -> None:
    returned = unpack(pack(Completed(data=threading.Lock())))
    assert returned.state.is_completed()
    assert returned.state.data is None
    assert "lock" in returned.lost


class Unpicklable(Exception):
    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("not today")


def test_an_exception_that_cannot_be_pickled_travels_as_its_type_and_message() -> None:
    returned = unpack(pack(Failed(data=Unpicklable("disk full"), message="disk full")))
    assert returned.state.is_failed()
    with pytest.raises(RuntimeError, match="Unpicklable: disk full"):
        returned.state.result()
    assert returned.lost == ""


def test_the_embedded_service_is_reachable_from_this_machine(embedded_address: str) -> None:
    assert embedded_address.startswith("unix-abstract:")
    assert unreachable(embedded_address) == ""
    # ... and from another process, which is what a pool child or a local Dask worker is.
    probe = "import sys; from headwater._runners.child import unreachable; " + (
        "print(repr(unreachable(sys.argv[1])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, embedded_address],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "''"


def test_an_address_nobody_listens_on_is_unreachable(tmp_path: Path) -> None:
    assert "ConnectionRefusedError" in unreachable("unix-abstract:headwater-nobody-here")
    assert "FileNotFoundError" in unreachable(f"unix:{tmp_path / 'no.sock'}")
    assert unreachable("127.0.0.1:1") != ""
