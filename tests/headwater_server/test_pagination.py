"""Page tokens: a token resumes after the last row returned, and only when more rows exist."""

from __future__ import annotations

import base64
import json
from typing import NamedTuple

import pytest
from headwater_server.errors import ServiceError
from headwater_server.storage import pagination

# Row ids are UUIDs, and a token's id must be one.
A = "00000000-0000-4000-8000-00000000000a"
B = "00000000-0000-4000-8000-00000000000b"
C = "00000000-0000-4000-8000-00000000000c"


class Row(NamedTuple):
    id: str
    create_time: int
    log_time: int = 0


def test_no_token_on_the_last_page() -> None:
    rows = [Row(A, 1), Row(B, 2)]
    assert pagination.next_page_token("flows", rows, 2) == ""
    assert pagination.next_page_token("flows", rows, 5) == ""


def test_token_resumes_after_the_last_returned_row_not_the_extra_one() -> None:
    rows = [Row(A, 1), Row(B, 2), Row(C, 3)]  # size 2 + the one extra row fetched

    token = pagination.next_page_token("flows", rows, 2)

    assert pagination.decode_token("flows", token) == (2, B)


def test_token_uses_the_named_time_column() -> None:
    rows = [Row(A, 1, log_time=10), Row(B, 2, log_time=20)]

    token = pagination.next_page_token("logs", rows, 1, time_key="log_time")

    assert pagination.decode_token("logs", token) == (10, A)


def test_token_of_another_collection_is_refused() -> None:
    token = pagination.next_page_token("flows", [Row(A, 1), Row(B, 2)], 1)

    with pytest.raises(ServiceError) as caught:
        pagination.decode_token("logs", token)

    assert caught.value.violations[0].field == "page_token"


def _token(*parts: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        _token("flows", 2**63, A),  # beyond the 64-bit column
        _token("flows", -(2**63) - 1, A),
        _token("flows", True, A),  # a bool is an int to Python, not to the database
        _token("flows", 1.5, A),
        _token("flows", 1, "x"),  # not a row id
        _token("flows", 1),
        _token("flows", 1, A, "extra"),
        "[" * 600,
        "%%%",
    ],
)
def test_crafted_tokens_are_refused(token: str) -> None:
    with pytest.raises(ServiceError) as caught:
        pagination.decode_token("flows", token)
    assert caught.value.violations[0].field == "page_token"


def test_the_extreme_valid_times_are_accepted() -> None:
    assert pagination.decode_token("flows", _token("flows", 2**63 - 1, A)) == (2**63 - 1, A)
