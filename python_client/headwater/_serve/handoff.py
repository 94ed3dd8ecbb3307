"""What a runner hands its spare processes (`headwater._serve.spare`), kept apart from them.

The runner imports this module, not the spare's: the spare loads flows, and the flows module
imports the runner (through `Flow.serve`), so the runner may not import what loads flows.

A run's ``env`` job variables (`headwater._serve.jobs`) reach a spare with its claim, and the
spare sets them in ``os.environ`` before it loads the run's flow. That gives the run the
environment a fresh process would have, under two conditions the runner checks
(`spare_may_set`, and the spare having loaded no flow ahead): what the spare did before the run
came read none of the variables. It started the interpreter (``PYTHON*``, ``LD_*``, locale and
time zone), imported the SDK, gRPC, protobuf and OpenTelemetry, read the SDK's settings and
opened its stream (``HEADWATER_*``, ``GRPC_*``, proxies, TLS files, ``OTEL_*``, ``HOME``, the
temporary directory). A run setting or removing one of those starts in a fresh process, as does
one handed to a spare that ran the flow's file ahead: that file, and whatever it imported, read
the environment as it was then.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headwater._deployment_records import Deployment
    from headwater._transport.client_workers import ClaimedRun

__all__ = ["entrypoint_in", "handoff_line", "preload_entrypoint", "read_handoff", "spare_may_set"]

#: Variables a spare's start-up read (see the module docstring), by prefix and by name (upper
#: case: proxies are honoured in either case).
_READ_AT_START_PREFIXES = (
    "HEADWATER_",
    "PREFECT_",
    "PYTHON",
    "GRPC_",
    "OTEL_",
    "PROTOCOL_BUFFERS_",
    "LD_",
    "DYLD_",
    "MALLOC",
    "LC_",
    "SSL_",
)
_READ_AT_START_NAMES = frozenset(
    {
        "TZ",
        "LANG",
        "LANGUAGE",
        "HOME",
        "TMPDIR",
        "TEMP",
        "TMP",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "GRPC_PROXY",
        "NO_GRPC_PROXY",
    }
)

#: A job's ``env``: variables to set (str) or remove (None).
Env = Mapping[str, "str | None"]


def spare_may_set(env: Env) -> bool:
    """Whether a spare (with no flow loaded ahead) may set ``env`` before loading the run's
    flow and give the run what a fresh process would: none of it was read at start-up."""
    for name in env:
        upper = name.upper()
        if upper in _READ_AT_START_NAMES or upper.startswith(_READ_AT_START_PREFIXES):
            return False
    return True


def handoff_line(run: ClaimedRun, directory: str | None, env: Env | None = None) -> bytes:
    """What the runner writes to a spare's stdin to hand it ``run``: its claim, its directory
    and the ``env`` job variables to set first (tab-separated)."""
    variables = base64.b64encode(json.dumps(dict(env)).encode()) if env else b""
    return b"\t".join((base64.b64encode(run.wire), (directory or "").encode(), variables)) + b"\n"


def read_handoff(line: str) -> tuple[bytes, str, dict[str, str | None]]:
    """A `handoff_line` read back: the claim's bytes, the directory ("" for none), the env."""
    wire, _, rest = line.rstrip("\n").partition("\t")
    directory, _, variables = rest.partition("\t")
    env = json.loads(base64.b64decode(variables)) if variables else {}
    return base64.b64decode(wire), directory, env


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
