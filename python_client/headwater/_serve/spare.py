"""A runner's spare process: everything a run needs done before the run is claimed.

A run's pickup time (created -> RUNNING) is what its process does between the claim and its
RUNNING proposal, so a spare (``python -m headwater._serve.execute -``) does all it can ahead,
while the runner is idle:

- loads the SDK and the engine, and opens its engine stream, with one round trip on it so the
  channel is connected and every module on the path is loaded (`warm_up`);
- with ``--preload ENTRYPOINT``, runs the flow's file already (`Preloaded`), for a runner that
  serves a single deployment, whose every run loads the same file.

The runner then hands it the claim it already holds (`headwater._serve.handoff`: the run and its
deployment as they came from ``PollRuns``, and the run's ``env`` job variables, which the spare
sets before loading the flow when that is honest: see that module), so the spare reads neither
from the service and its first message is the RUNNING proposal (`run_handed`).

What is safe to do ahead: a spare runs one run and exits, and the runner starts the next spare
after each handoff, so a preloaded module serves exactly one run, as a module loaded at run
time does; only a runner serving one deployment preloads, so no run shares its process with
another deployment's code. The loaded code must still be what the run would load: if any file
that the preload brought in (outside the installed packages) changed since, or the run's
entrypoint or directory differ, the flow is loaded again at run time.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import sysconfig
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater._deployment_records import Deployment
    from headwater._flows import Flow

__all__ = ["Preloaded", "run_handed", "warm_up"]


#: What a handed run needs before its RUNNING proposal, loaded in `warm_up` instead.
_RUN_MODULES = (
    "headwater._engine.entry",
    "headwater._engine.setup",
    "headwater._flows",
    "headwater._serve.loading",
    "headwater._transport.client_workers",
    "headwater._transport.stream.transport",
    "headwater.client",
)


def warm_up() -> None:
    """Load what a run needs and connect the engine stream, before any run is handed over.

    The round trip reads a run that cannot exist: its NOT_FOUND answer proves the stream is
    open end to end, and loads the code on the path of every later answer.
    """
    from headwater._logging import setup_logging
    from headwater._transport.runtime import default_transport
    from headwater.exceptions import ServiceError

    for module in _RUN_MODULES:
        importlib.import_module(module)
    setup_logging()
    with contextlib.suppress(ServiceError):
        default_transport().read_flow_run(str(uuid.UUID(int=0)))


@dataclass
class Preloaded:
    """A flow loaded ahead from its entrypoint, and the files its loading read.

    Attributes:
        entrypoint: The entrypoint loaded (its file path as the runner gave it).
        directory: The working directory it was loaded in.
        flow: The flow.
        files: The modification time of each source file the load brought in, outside the
            installed packages, so a change before the run is noticed (`still_current`).
    """

    entrypoint: str
    directory: str
    flow: Flow[..., Any]
    files: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, entrypoint: str) -> Preloaded | None:
        """Load ``entrypoint``'s flow now; None when that fails (the run then loads it
        itself, and reports why it cannot)."""
        from headwater._entrypoints import load_flow_from_entrypoint

        before = set(sys.modules)
        try:
            flow = load_flow_from_entrypoint(entrypoint, use_placeholder_flow=False)
        except Exception:
            return None
        installed = {sysconfig.get_path(name) for name in ("stdlib", "purelib", "platlib")}
        files: dict[str, int] = {}
        for name in set(sys.modules) - before:
            path = getattr(sys.modules.get(name), "__file__", None)
            if path and not any(path.startswith(prefix) for prefix in installed):
                try:
                    files[path] = os.stat(path).st_mtime_ns
                except OSError:
                    continue
        return cls(entrypoint, os.getcwd(), flow, files)

    def serves(self, deployment: Deployment) -> bool:
        """Whether the run of ``deployment``, in the current directory, may use this flow."""
        from headwater._serve.handoff import preload_entrypoint

        return (
            preload_entrypoint(deployment) == self.entrypoint
            and os.getcwd() == self.directory
            and self.still_current()
        )

    def still_current(self) -> bool:
        """No file the load read has changed since."""
        for path, mtime in self.files.items():
            try:
                if os.stat(path).st_mtime_ns != mtime:
                    return False
            except OSError:
                return False
        return True


def run_handed(line: str, preloaded: Preloaded | None) -> int:
    """Run the run handed over in ``line`` (`headwater._serve.handoff.handoff_line`); returns
    the process's exit status."""
    from headwater._engine.entry import run
    from headwater._serve.handoff import read_handoff
    from headwater._serve.loading import adopt_retry_policy, load_flow_of_deployment
    from headwater._transport.client_workers import claimed_run_from_wire
    from headwater._transport.runtime import transport_for_call
    from headwater._transport.stream.transport import snapshot_of_run

    wire, directory, env = read_handoff(line)
    claimed, message = claimed_run_from_wire(wire)
    if directory:
        os.chdir(directory)
    # The run's env job variables, before its flow is loaded (see headwater._serve.handoff: the
    # runner hands such a run only to a spare that loaded no flow, and only variables that
    # nothing read yet).
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    deployment = claimed.deployment
    if preloaded is not None and not env and preloaded.serves(deployment):
        flow = preloaded.flow
    else:
        flow = load_flow_of_deployment(deployment)
    # A run whose retry policy was just changed is read again, to show the policy it has now.
    known = None if adopt_retry_policy(claimed.flow_run, flow) else snapshot_of_run(message)
    state = run(
        flow,
        None,
        transport=transport_for_call(None),
        return_type="state",
        flow_run_id=claimed.flow_run.id,
        known_run=known,
    )
    return 0 if state.is_completed() else 1
