"""Random (version 4) UUID strings, made several times faster than ``str(uuid.uuid4())``.

A task run takes three fresh ids (its own, its create's ``request_id`` and its end's
``transition_id``), and the `uuid.UUID` object each one builds only to be turned into a string
is a measurable share of a trivial task's client time, and so is one `os.urandom` system call
per id. The string here is the same: 122 random bits from `os.urandom`, with the version and
variant bits of a random UUID, in the canonical 8-4-4-4-12 form. The random bytes are read for
many ids at once, into a buffer of each thread's own (so two threads never share bytes), and a
forked child drops the buffer it inherited, so it never repeats its parent's ids.
"""

from __future__ import annotations

import os
import threading

__all__ = ["uuid4_str"]

#: The variant digit (RFC 4122: binary 10xx) for each value of the random digit it replaces.
_VARIANT = "89ab89ab89ab89ab"

#: How many ids' worth of random bytes one `os.urandom` call reads.
_IDS_PER_READ = 128


class _RandomHex(threading.local):
    """This thread's unused random bytes, as hex digits, and how many it has used."""

    def __init__(self) -> None:
        self.digits = ""
        self.used = 0


_random = _RandomHex()


def uuid4_str() -> str:
    """A new random UUID as a string, as ``str(uuid.uuid4())`` would give."""
    random = _random
    start = random.used
    digits = random.digits
    if start >= len(digits):
        digits = random.digits = os.urandom(16 * _IDS_PER_READ).hex()
        start = 0
    random.used = start + 32
    h = digits[start : start + 32]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16)]}{h[17:20]}-{h[20:]}"


def _forget_inherited_randomness() -> None:
    """In a forked child: the bytes left in the buffer are also the parent's next ids."""
    _random.digits = ""
    _random.used = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_randomness)
