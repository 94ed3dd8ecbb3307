"""What a runner hands a spare process: the claim, its directory and the run's ``env`` job
variables, and which variables a spare may set before loading the run's flow
(`headwater._serve.handoff`)."""

from __future__ import annotations

from typing import Any, cast

import pytest
from headwater._serve.handoff import handoff_line, read_handoff, spare_may_set
from headwater._transport.client_workers import ClaimedRun


def _claim(wire: bytes) -> ClaimedRun:
    return cast(ClaimedRun, type("Claim", (), {"wire": wire})())


def test_a_handoff_line_carries_the_claim_directory_and_env_through_one_line() -> None:
    env = {"GREETING": "hello\tworld\n", "DROPPED": None}
    line = handoff_line(_claim(b"\x00claim\n\t"), "/srv/project", env)

    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert read_handoff(line.decode()) == (b"\x00claim\n\t", "/srv/project", env)


def test_a_handoff_line_without_directory_or_env_reads_back_empty() -> None:
    assert read_handoff(handoff_line(_claim(b"claim"), None).decode()) == (b"claim", "", {})


@pytest.mark.parametrize(
    "env",
    [{}, {"GREETING": "hi"}, {"DATABASE_URL": "postgresql://db/app", "REMOVED": None}],
)
def test_variables_nothing_read_at_start_up_may_be_set_in_a_spare(env: dict[str, Any]) -> None:
    assert spare_may_set(env)


@pytest.mark.parametrize(
    "name",
    [
        "HEADWATER_LOGGING_LEVEL",
        "PREFECT_API_URL",
        "PYTHONPATH",
        "GRPC_VERBOSITY",
        "OTEL_SERVICE_NAME",
        "LD_PRELOAD",
        "LC_ALL",
        "TZ",
        "HOME",
        "TMPDIR",
        "https_proxy",
        "NO_PROXY",
        "SSL_CERT_FILE",
    ],
)
def test_variables_a_spares_start_up_read_send_the_run_to_a_fresh_process(name: str) -> None:
    assert not spare_may_set({"GREETING": "hi", name: "x"})
    assert not spare_may_set({name: None})
