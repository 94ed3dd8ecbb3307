"""Running a shipped task call in another process: a process-pool child or a Dask worker.

The parent chooses the task run's id at submit and ships a `TaskCall` (cloudpickled: it holds
the task's function, which plain pickle cannot send when it was defined in ``__main__`` or
inside a function) with the flow it belongs to, together with the address of the service its
flow run reports to. Here, in the other process, the call runs on the engine against that same
service, so the task run reports every state itself, and only the final `State` travels back.
While it runs, its flow run is current here too (`headwater.runtime.flow_run`, and task calls
made inside the task belong to that flow run), as they are for a task on a thread.

The other process reaches the service by the address alone. For the embedded server that is an
abstract unix socket (``unix-abstract:headwater-<pid>-...``), which any process on the same
machine can open; a process that cannot (another machine, another network namespace) is caught
by `unreachable` before anything is shipped there.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headwater._context import FlowRunContext
from headwater._transport.channel import checked_target

if TYPE_CHECKING:
    from collections.abc import Iterator

    from headwater._engine.calls import TaskCall
    from headwater._engine.runnable import Runnable
    from headwater._states import State
    from headwater._transport.interface import Transport

__all__ = [
    "Returned",
    "Shipment",
    "pack",
    "pack_call",
    "run_shipped",
    "shipping_from",
    "transport_to",
    "unpack",
    "unreachable",
]

#: A dedicated stream per service address, for a process whose own default service is another
#: one (a long-lived Dask worker that served flows of two services).
_dedicated: dict[str, Transport] = {}
_dedicated_lock = threading.Lock()

#: The transports this process's flow runs ship calls with, by address: a call that runs in
#: this very process (a Dask cluster of threads, ``processes=False``) uses the flow's own.
_shipping: dict[str, Transport] = {}


def _forget_transports() -> None:
    """A forked child (a Dask worker started with fork) cannot use its parent's streams."""
    _shipping.clear()
    _dedicated.clear()


os.register_at_fork(after_in_child=_forget_transports)


@dataclass(frozen=True, slots=True)
class Shipment:
    """What travels to the other process.

    Attributes:
        call: The task call, its run's id chosen.
        flow: The flow of the flow run the call belongs to (None outside any flow, or when
            the flow cannot be pickled: the task then runs without its flow run's context).
        log_prints: Whether that flow run logs prints.
    """

    call: TaskCall
    flow: Runnable | None = None
    log_prints: bool = False


@dataclass(frozen=True, slots=True)
class Returned:
    """What travels back from the other process.

    Attributes:
        state: The task run's final state, with its result or exception when they could be
            pickled.
        pid: The process the call ran in.
        lost: Why the state's data could not be sent back ("" when it was): the run's state
            in the service is right, only the in-memory value stayed in the other process.
    """

    state: State[Any]
    pid: int
    lost: str = ""


def transport_to(address: str) -> Transport:
    """The stream to the service at ``address``, for this process.

    A process with no service of its own (``HEADWATER_API_URL`` unset: a pool child, a Dask
    worker started without it) adopts ``address`` as its service, so everything the task does
    (nested task calls, run logs) reports there too instead of starting an embedded server of
    its own. A process already set up for another service keeps it and gets a dedicated
    stream for this address.
    """
    from headwater._settings import get_settings, reset_settings
    from headwater._transport.runtime import default_transport, open_transport

    target = checked_target(address)
    local = _shipping.get(target)
    if local is not None:
        return local
    if get_settings().api_url is None:
        os.environ["HEADWATER_API_URL"] = target
        reset_settings()
    if get_settings().api_url == target:
        return default_transport()
    with _dedicated_lock:
        transport = _dedicated.get(target)
        if transport is None:
            transport = _dedicated[target] = open_transport(target)
        return transport


def shipping_from(transport: Transport) -> str:
    """Note that this process ships calls reporting to ``transport``; return its address."""
    address = transport.address
    _shipping[checked_target(address)] = transport
    return address


def pack_call(call: TaskCall, flow_run: FlowRunContext | None) -> bytes:
    """The shipment of ``call`` (in the flow's process), with its flow when it can travel.

    Raises:
        Exception: The call itself cannot be pickled (its function or arguments).
    """
    import cloudpickle

    if flow_run is not None and flow_run.flow_run_id == call.flow_run_id:
        try:
            return bytes(cloudpickle.dumps(Shipment(call, flow_run.flow, flow_run.log_prints)))
        except Exception:  # a flow holding something unpicklable: the call goes alone
            pass
    return bytes(cloudpickle.dumps(Shipment(call)))


def run_shipped(payload: bytes, address: str) -> bytes:
    """Run a shipped call here, against the service at ``address``; return the packed result.

    Every state is in the service before this returns: the task's end, which the engine may
    send without waiting, and its log lines are flushed first, since this process may be
    stopped (a pool shutting down, a cluster closing) as soon as the parent has the answer.
    """
    import cloudpickle

    from headwater._engine.calls import run_task_call
    from headwater._states import Running
    from headwater.exceptions import Abort

    transport = transport_to(address)
    shipment: Shipment = cloudpickle.loads(payload)
    call = shipment.call
    try:
        with _in_flow_run(shipment, transport):
            state = run_task_call(call, transport=transport)
    except Abort as exc:
        # The run is RUNNING in another process (Dask ran the call again after losing the
        # worker that ran it first): no final state here; the parent settles it.
        state = Running(message=str(exc))
    transport.flush_task_run_states()
    transport.flush_logs(wait=True)
    return pack(state)


class _ShippedFlowRun(FlowRunContext):
    """The flow run of a shipped call, as the process running the call sees it.

    Task calls made inside the shipped task belong to the flow run, but this process cannot
    count calls with the flow's process: their dynamic keys are numbered under the shipped
    task run's id instead, which no other call of the flow run uses.
    """

    __slots__ = ("_key_prefix",)

    def __init__(self, flow: Runnable, call: TaskCall, log_prints: bool, transport: Transport):
        flow_run_id = call.flow_run_id
        assert flow_run_id is not None
        super().__init__(
            flow=flow,
            flow_run_id=flow_run_id,
            make_flow_run=lambda: transport.read_flow_run(flow_run_id).flow_run(),
            parameters=call.flow_parameters,
            log_prints=log_prints,
            transport=transport,
        )
        self._key_prefix = call.task_run_id

    def next_dynamic_key(self, task_key: str) -> str:
        return f"{self._key_prefix}.{super().next_dynamic_key(task_key)}"


@contextlib.contextmanager
def _in_flow_run(shipment: Shipment, transport: Transport) -> Iterator[None]:
    """Make the shipped call's flow run current while the call runs (when it was shipped)."""
    from headwater._context import _current_flow_run

    call = shipment.call
    if shipment.flow is None or call.flow_run_id is None:
        yield
        return
    token = _current_flow_run.set(
        _ShippedFlowRun(shipment.flow, call, shipment.log_prints, transport)
    )
    try:
        yield
    finally:
        _current_flow_run.reset(token)


def pack(state: State[Any]) -> bytes:
    """The final state, pickled for the trip back, with a note when its data cannot travel.

    A result the parent cannot receive (an open file, a lock) does not make the run fail: it
    completed, and the service says so. The parent's future then says why the value is not
    there (`Returned.lost`).
    """
    import cloudpickle

    from headwater._states import State

    pid = os.getpid()
    try:
        return bytes(cloudpickle.dumps(Returned(state, pid)))
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
    data = state.data
    if isinstance(data, BaseException):
        # Keep the failure readable: its type and message, which always pickle.
        data = RuntimeError(f"{type(data).__name__}: {data}")
        reason = ""
    else:
        data = None
    bare: State[Any] = State(
        state.type, state.name, state.message, state.timestamp, state.id, data, None
    )
    return bytes(cloudpickle.dumps(Returned(bare, pid, reason)))


def unpack(packed: bytes) -> Returned:
    """What `pack` sent, in the parent."""
    import cloudpickle

    returned: Returned = cloudpickle.loads(packed)
    return returned


def unreachable(address: str, timeout: float = 5.0) -> str:
    """Why this process cannot open a connection to ``address`` ("" when it can).

    Runs where the task would run (on each Dask worker), before any task is shipped there:
    an embedded service is a unix socket of the flow's machine, and a worker elsewhere would
    otherwise fail only once a task started, with a connection error far from its cause.
    """
    target = checked_target(address)
    try:
        if target.startswith("unix-abstract:"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect("\0" + target.removeprefix("unix-abstract:"))
        elif target.startswith("unix:"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(target.removeprefix("unix:").removeprefix("//"))
        else:
            host, _, port = target.rpartition(":")
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                pass
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""
