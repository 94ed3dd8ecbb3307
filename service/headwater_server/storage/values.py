"""Values storage derives from requests the application layer has already checked.

Storage trusts its callers' requests (:mod:`headwater_server.application.checks` judged them);
these helpers only turn checked fields into what is stored: canonical ids, payload bytes, names.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

from headwater.v1 import states_pb2

# The longest name the schema stores (VARCHAR(255) on PostgreSQL).
NAME_MAX = 255


#: The variant digit (RFC 4122/9562: binary 10xx) for each value of the random digit it replaces.
_VARIANT_DIGIT = "89ab89ab89ab89ab"
#: Random hex digits an id takes (74 bits: 18 digits and 2 bits of the variant's), and how
#: many ids' worth one `os.urandom` call reads.
_RANDOM_DIGITS = 19
_BYTES_PER_READ = _RANDOM_DIGITS * 64 // 2


class _RandomDigits(threading.local):
    """This thread's unused random hex digits (a thread never shares them with another)."""

    def __init__(self) -> None:
        self.digits = ""
        self.used = 0


_random_digits = _RandomDigits()


def new_id() -> str:
    """A new time-ordered (version 7, RFC 9562) UUID in its stored form.

    Its first 48 bits are the Unix time in milliseconds and the other 74 free bits random, so
    ids made one after the other sort together: every index keyed by an id (each table's
    primary key, the history rows' ids) takes new rows at its right edge, on pages that are
    already in memory and that a transaction's neighbours dirty anyway, instead of one random
    page per row and per index, which SQLite then writes to its log at every commit.

    A task run takes three or four new ids, so they are built as text straight from random
    digits read for many ids at once (one `os.urandom` call per 64 ids, not one per id; a
    forked child drops what it inherited): about a third of building them from bytes.
    """
    state = _random_digits
    start = state.used
    digits = state.digits
    if start >= len(digits):
        digits = state.digits = os.urandom(_BYTES_PER_READ).hex()
        start = 0
    state.used = start + _RANDOM_DIGITS
    h = digits[start : start + _RANDOM_DIGITS]
    t = f"{time.time_ns() // 1_000_000:012x}"
    return f"{t[:8]}-{t[8:]}-7{h[:3]}-{_VARIANT_DIGIT[int(h[3], 16)]}{h[4:7]}-{h[7:]}"


def _forget_inherited_digits() -> None:
    """In a forked child: the digits left are also the parent's next ids'."""
    _random_digits.digits = ""
    _random_digits.used = 0


os.register_at_fork(after_in_child=_forget_inherited_digits)


#: A UUID already in its stored form: lower case, with hyphens (as clients normally send).
_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_id(value: str) -> str:
    """The stored form of a checked UUID field (lower case, with hyphens)."""
    if _CANONICAL.fullmatch(value):  # the common case, without building a UUID
        return value
    return str(uuid.UUID(value))


def optional_id(value: str) -> str | None:
    """The stored form of a checked optional UUID field, None when it is empty."""
    return canonical_id(value) if value else None


def payloads(state: states_pb2.State) -> tuple[bytes | None, bytes | None]:
    result = state.result.SerializeToString() if state.HasField("result") else None
    failure = state.failure.SerializeToString() if state.HasField("failure") else None
    return result, failure


def free_text(value: str) -> str:
    """Text meant for people in a form every database stores: NUL becomes U+FFFD.

    PostgreSQL text cannot hold NUL; replacing it (rather than refusing the request) keeps a
    run whose exception message contains one from ending CRASHED instead of FAILED, and SQLite
    stores the same text so both databases answer alike.
    """
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def proposal_message(state: states_pb2.State) -> str:
    """The message stored with a proposed state: its own, else its failure's."""
    if state.message:
        return free_text(state.message)
    if state.HasField("failure"):
        return free_text(state.failure.message)
    return ""


def task_run_name(task_key: str, dynamic_key: str) -> str:
    """``mymodule.extract-1a2b3c`` call ``0`` -> ``extract-0``.

    A task called outside any flow has a random dynamic key (a UUID's 32 hex digits); its run
    is named with the first three, as Prefect names such runs (``extract-9f2``): the full key
    made names too long to read in listings.
    """
    base = task_key.rsplit(".", 1)[-1]
    stem, sep, suffix = base.rpartition("-")
    if sep and stem and re.fullmatch(r"[0-9a-f]{6,}", suffix):
        base = stem
    if _RANDOM_KEY.fullmatch(dynamic_key):
        dynamic_key = dynamic_key.replace("-", "")[:3]
    return f"{base}-{dynamic_key}"[:NAME_MAX]


#: A random dynamic key: a UUID, with or without its dashes.
_RANDOM_KEY = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")


#: The idempotency key of every run a deployment's schedule creates starts with this; keys
#: starting with it are refused from callers, so such a run is always the scheduler's.
SCHEDULED_KEY_PREFIX = "scheduled "


def scheduled_key(schedule_id: str, scheduled_time_us: int) -> str:
    """The idempotency key of a schedule's run due at ``scheduled_time_us``.

    ``"scheduled <schedule id> <ISO 8601 UTC time>"``: one run per (schedule, time), however
    many scheduler loops try to create it.
    """
    from datetime import UTC, datetime, timedelta

    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=scheduled_time_us)
    return f"{SCHEDULED_KEY_PREFIX}{schedule_id} {moment.isoformat()}"


def is_scheduled_key(idempotency_key: str | None) -> bool:
    """True for the idempotency key of a run a deployment's schedule created."""
    return idempotency_key is not None and idempotency_key.startswith(SCHEDULED_KEY_PREFIX)
