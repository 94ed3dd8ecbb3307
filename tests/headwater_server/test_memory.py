"""The standalone server fixes glibc's mmap threshold (see headwater_server/memory.py)."""

from __future__ import annotations

import platform

import pytest
from headwater_server import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc allocator option")
def test_the_mmap_threshold_is_fixed_on_glibc() -> None:
    assert memory.return_large_blocks_to_the_system() is True
