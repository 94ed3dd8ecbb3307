"""Keep a standalone server's memory steady under large requests it rejects.

A rejected large request (a 3 MiB name, say) becomes a 3 MiB Python string for a moment. glibc
serves the first such block with mmap and, when it is freed, raises its mmap threshold to that
size, so later large blocks come from the heap arenas instead, where freed space fragments and
stays resident: 2,000 rejected 3 MiB requests grew the server by about 200 MiB and it kept
creeping. A fixed threshold keeps every large block in its own mapping, returned to the system
the moment it is freed (`python -m bench.rejected_requests` shows the effect).

Only `headwater server start` (:func:`headwater_server.server.serve`) calls this: it sets a
process-wide allocator option, which is the server process's to choose but not an embedding
application's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger("headwater_server.memory")

# glibc's mallopt parameter number for the mmap threshold (malloc.h: M_MMAP_THRESHOLD).
_M_MMAP_THRESHOLD = -3
# Blocks at least this large get their own mapping: far above the small allocations of normal
# traffic, far below the megabytes of a large request.
MMAP_THRESHOLD_BYTES = 256 * 1024


def return_large_blocks_to_the_system() -> bool:
    """Fix glibc's mmap threshold at MMAP_THRESHOLD_BYTES; False where that is not possible.

    Other C libraries (musl, macOS) do not raise their threshold this way; there this does
    nothing.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    if not done:
        logger.debug("mallopt(M_MMAP_THRESHOLD) was refused; large blocks use the default")
    return done
