"""Test helpers, mirroring ``prefect.testing.utilities``: a throwaway service for a test run.

``from prefect.testing.utilities import prefect_test_harness`` ports by changing the import::

    @pytest.fixture(autouse=True, scope="session")
    def headwater_fixture():
        with prefect_test_harness():
            yield
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

__all__ = ["headwater_test_harness", "prefect_test_harness"]

#: Variables that would send the block's runs somewhere else than its own service.
_ELSEWHERE = ("HEADWATER_API_URL", "HEADWATER_DATABASE_URL")


@contextlib.contextmanager
def headwater_test_harness(server_startup_timeout: int | None = 30) -> Iterator[None]:
    """Run the block against a new, empty service of its own, as Prefect's harness does.

    Inside the block, flows and tasks are stored by an embedded server (started on entry, in
    this process) in a SQLite database under a temporary ``HEADWATER_HOME``, which also holds
    persisted results; ``HEADWATER_API_URL`` and ``HEADWATER_DATABASE_URL`` are unset, so no
    test run reaches a real service or database. Processes started inside the block (a
    process-pool task runner, a script) inherit the same settings. On exit the server stops,
    the directory is removed, and the variables are put back; the process's next run
    connects afresh to whatever they name.

    Args:
        server_startup_timeout: Accepted for Prefect's signature. The embedded server starts
            in this process before the block runs, and a server that cannot start raises
            `ServiceUnavailable` there, so there is nothing to wait for.

    Raises:
        ServiceUnavailable: The embedded server could not start; the message says why.
    """
    del server_startup_timeout
    from headwater._settings import reset_settings
    from headwater._transport import runtime

    home = tempfile.mkdtemp(prefix="headwater-test-")
    saved = {name: os.environ.get(name) for name in (*_ELSEWHERE, "HEADWATER_HOME")}
    runtime.reset()  # runs until now keep what they stored; the block starts on a new service
    for name in _ELSEWHERE:
        os.environ.pop(name, None)
    os.environ["HEADWATER_HOME"] = home
    reset_settings()
    try:
        runtime.service_address()  # start the server now: a failure is the harness's, not a test's
        yield
    finally:
        runtime.reset()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_settings()
        shutil.rmtree(home, ignore_errors=True)


#: Prefect's name, so a ported test suite's import works unchanged.
prefect_test_harness = headwater_test_harness
