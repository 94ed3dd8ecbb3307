"""Page tokens: a token resumes after the last row returned, and only when more rows exist."""

from __future__ import annotations

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
