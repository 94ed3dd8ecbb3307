"""What a runner hands its spare processes (`headwater._serve.spare`), kept apart from them.

The runner imports this module, not the spare's: the spare loads flows, and the flows module
imports the runner (through `Flow.serve`), so the runner may not import what loads flows.
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headwater._deployment_records import Deployment
    from headwater._transport.client_workers import ClaimedRun

__all__ = ["entrypoint_in", "handoff_line", "preload_entrypoint"]


def handoff_line(run: ClaimedRun, directory: str | None) -> bytes:
    """What the runner writes to a spare's stdin to hand it ``run``: its claim, its directory."""
    return base64.b64encode(run.wire) + b"\t" + (directory or "").encode() + b"\n"


def preload_entrypoint(deployment: Deployment) -> str | None:
    """The entrypoint a spare may load ahead for runs of ``deployment``; None when it may not
    (no entrypoint, or a git repository cloned afresh for each run)."""
    if not deployment.entrypoint or deployment.git_url:
        return None
    return entrypoint_in(deployment.entrypoint, deployment.path)


def entrypoint_in(entrypoint: str, directory: str | None) -> str:
    """``entrypoint`` with a relative file path made relative to ``directory``."""
    file, sep, function = entrypoint.rpartition(":")
    if sep and directory and not os.path.isabs(file):
        return f"{os.path.join(directory, file)}:{function}"
    return entrypoint
