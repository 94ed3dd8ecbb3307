"""WorkerService end to end over a real server, on SQLite and PostgreSQL.

Due runs are claimed once (PENDING through the ordinary proposal) however many pollers race for
them; a held poll answers with a run created or becoming due while it waits; pools, queues,
pauses and pool limits decide what a worker gets, and queue priority in which order (queues of
one priority as one, earliest scheduled run first, then the lower run id); the
heartbeat names the runs to stop; bad input gets INVALID_ARGUMENT or NOT_FOUND naming the field.
"""

from __future__ import annotations

import collections
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from headwater.v1 import (
    deployments_pb2,
    flow_runs_pb2,
    states_pb2,
    work_pools_pb2,
    workers_pb2,
)
from headwater_server.storage._workers import NEXT_DUE_WINDOW
from rpc_helpers import Api, error_details
from server_harness import ServerProcess

pytestmark = pytest.mark.integration

D = deployments_pb2
W = workers_pb2


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Api]:
    with server.channel() as channel:
        yield Api(channel)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _deployment(api: Api, **fields: Any) -> D.Deployment:
    fields.setdefault("flow_name", _unique("etl"))
    fields.setdefault("name", "nightly")
    fields.setdefault("entrypoint", "flows.py:etl")
    request = D.CreateDeploymentRequest(deployment=D.Deployment(**fields))
    return api.deployments.CreateDeployment(request).deployment


def _runs(api: Api, deployment_id: str, count: int, **fields: Any) -> list[str]:
    request = D.BatchCreateFlowRunsFromDeploymentRequest(
        deployment_id=deployment_id, runs=[D.DeploymentRun(**fields) for _ in range(count)]
    )
    return [run.id for run in api.deployments.BatchCreateFlowRunsFromDeployment(request).flow_runs]


def _poll(api: Api, wait: float = 0.0, **fields: Any) -> list[W.ClaimedRun]:
    fields.setdefault("worker_name", "test-worker")
    request = W.PollRunsRequest(**fields)
    if wait:
        request.wait.FromNanoseconds(int(wait * 1e9))
    return list(api.workers.PollRuns(request, timeout=wait + 30).runs)


def _state(api: Api, run_id: str) -> int:
    request = flow_runs_pb2.GetFlowRunRequest(flow_run_id=run_id)
    return api.flow_runs.GetFlowRun(request).flow_run.state.type


def _error(api: Api, **fields: Any) -> Any:
    with pytest.raises(grpc.RpcError) as caught:
        api.workers.PollRuns(W.PollRunsRequest(**fields))
    return error_details(caught.value)


def test_a_due_run_is_claimed_once_and_handed_out_with_its_deployment(api: Api) -> None:
    deployment = _deployment(api)
    [run_id] = _runs(api, deployment.id, 1)

    [claimed] = _poll(api, deployment_ids=[deployment.id], max_runs=5)

    assert claimed.flow_run.id == run_id
    assert claimed.flow_run.state.type == states_pb2.STATE_TYPE_PENDING
    assert claimed.flow_run.state.message == "Claimed by test-worker."
    assert claimed.deployment.entrypoint == "flows.py:etl"
    assert _state(api, run_id) == states_pb2.STATE_TYPE_PENDING
    assert _poll(api, deployment_ids=[deployment.id]) == []


def test_a_held_poll_answers_with_a_run_created_while_it_waits(api: Api) -> None:
    deployment = _deployment(api)
    with ThreadPoolExecutor(1) as pool:
        polled = pool.submit(_poll, api, 20.0, deployment_ids=[deployment.id])
        threading.Event().wait(0.3)  # let the poll reach the server and wait there
        [run_id] = _runs(api, deployment.id, 1)
        [claimed] = polled.result()
    assert claimed.flow_run.id == run_id


def test_a_run_scheduled_ahead_is_handed_out_once_it_is_due(api: Api) -> None:
    deployment = _deployment(api)
    due = timestamp_pb2.Timestamp()
    due.GetCurrentTime()
    due.FromNanoseconds(due.ToNanoseconds() + 1_500_000_000)
    [run_id] = _runs(api, deployment.id, 1, scheduled_time=due)
    assert _poll(api, deployment_ids=[deployment.id]) == []

    [claimed] = _poll(api, 20.0, deployment_ids=[deployment.id])

    assert claimed.flow_run.id == run_id
    assert claimed.flow_run.state.type == states_pb2.STATE_TYPE_PENDING


def _in(seconds: float) -> timestamp_pb2.Timestamp:
    moment = timestamp_pb2.Timestamp()
    moment.GetCurrentTime()
    moment.FromNanoseconds(moment.ToNanoseconds() + int(seconds * 1e9))
    return moment


def test_a_held_poll_answers_once_due_with_more_than_a_window_of_other_runs_before(
    api: Api,
) -> None:
    # The poll finds its next run in a window of the runs ahead (storage._workers): with other
    # deployments' runs filling the window, it wakes at the window's end and looks again.
    deployment = _deployment(api)
    other = _deployment(api)
    count = NEXT_DUE_WINDOW + 10
    request = D.BatchCreateFlowRunsFromDeploymentRequest(
        deployment_id=other.id,
        runs=[D.DeploymentRun(scheduled_time=_in(0.5 + i / count)) for i in range(count)],
    )
    api.deployments.BatchCreateFlowRunsFromDeployment(request)
    [run_id] = _runs(api, deployment.id, 1, scheduled_time=_in(2.0))

    [claimed] = _poll(api, 20.0, deployment_ids=[deployment.id])

    assert claimed.flow_run.id == run_id
    assert _state(api, run_id) == states_pb2.STATE_TYPE_PENDING


def test_pollers_racing_over_200_due_runs_claim_each_exactly_once(api: Api) -> None:
    deployment = _deployment(api)
    run_ids = _runs(api, deployment.id, 200)
    claimed: list[str] = []
    lock = threading.Lock()

    def drain(worker: int) -> None:
        while True:
            runs = _poll(
                api, worker_name=f"racer-{worker}", deployment_ids=[deployment.id], max_runs=7
            )
            if not runs:
                return
            with lock:
                claimed.extend(run.flow_run.id for run in runs)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(drain, range(4)))

    repeated = [run for run, times in collections.Counter(claimed).items() if times > 1]
    assert repeated == []
    assert sorted(claimed) == sorted(run_ids)
    assert {_state(api, run_id) for run_id in run_ids} == {states_pb2.STATE_TYPE_PENDING}


def _pool(api: Api, **fields: Any) -> work_pools_pb2.WorkPool:
    pool = work_pools_pb2.WorkPool(name=_unique("pool"), **fields)
    request = work_pools_pb2.CreateWorkPoolRequest(work_pool=pool)
    return api.work_pools.CreateWorkPool(request).work_pool


def test_a_worker_takes_runs_of_its_pool_and_queues_only(api: Api) -> None:
    pool = _pool(api)
    other = _pool(api)
    default = _deployment(api, work_pool_name=pool.name)
    urgent = _deployment(api, work_pool_name=pool.name, work_queue_name="urgent")
    elsewhere = _deployment(api, work_pool_name=other.name)
    [default_run] = _runs(api, default.id, 1)
    [urgent_run] = _runs(api, urgent.id, 1)
    _runs(api, elsewhere.id, 1)

    got = _poll(api, work_pool_name=pool.name, work_queue_names=["urgent"], max_runs=10)
    assert [run.flow_run.id for run in got] == [urgent_run]
    got = _poll(api, work_pool_name=pool.name, max_runs=10)
    assert [run.flow_run.id for run in got] == [default_run]
    assert got[0].deployment.work_pool_name == pool.name


def _ago(seconds: float) -> timestamp_pb2.Timestamp:
    """A moment ``seconds`` back. Keep it well under the service's Late threshold (15 s): the
    Late marker locks a run while it marks it, and a claim skips locked runs (PostgreSQL), so
    an older run could be left out of a poll and the order these tests assert would race."""
    moment = timestamp_pb2.Timestamp()
    moment.GetCurrentTime()
    moment.FromNanoseconds(moment.ToNanoseconds() - int(seconds * 1e9))
    return moment


def _set_priority(api: Api, pool: str, queue: str, priority: int) -> None:
    api.work_pools.UpdateWorkQueue(
        work_pools_pb2.UpdateWorkQueueRequest(
            work_pool_name=pool,
            name=queue,
            work_queue=work_pools_pb2.WorkQueue(priority=priority),
            update_mask=field_mask_pb2.FieldMask(paths=["priority"]),
        )
    )


def test_a_worker_takes_the_higher_priority_queues_runs_first(api: Api) -> None:
    pool = _pool(api)  # its "default" queue has priority 1, the highest
    api.work_pools.CreateWorkQueue(
        work_pools_pb2.CreateWorkQueueRequest(
            work_pool_name=pool.name, work_queue=work_pools_pb2.WorkQueue(name="bulk")
        )
    )  # priority 0: after the pool's other queues (2)
    first = _deployment(api, work_pool_name=pool.name)
    bulk = _deployment(api, work_pool_name=pool.name, work_queue_name="bulk")
    # The bulk queue's runs have waited longer, yet the default queue's go first.
    bulk_runs = [_runs(api, bulk.id, 1, scheduled_time=_ago(ago))[0] for ago in (6, 5)]
    first_runs = [_runs(api, first.id, 1, scheduled_time=_ago(ago))[0] for ago in (4, 3)]

    got = _poll(api, work_pool_name=pool.name, max_runs=3)

    assert [run.flow_run.id for run in got] == [*first_runs, bulk_runs[0]]
    assert [run.flow_run.id for run in _poll(api, work_pool_name=pool.name)] == [bulk_runs[1]]

    # A changed priority orders the next claims.
    _set_priority(api, pool.name, "default", 3)
    first_runs = [_runs(api, first.id, 1, scheduled_time=_ago(ago))[0] for ago in (6, 5)]
    bulk_runs = [_runs(api, bulk.id, 1, scheduled_time=_ago(ago))[0] for ago in (4, 3)]
    got = _poll(api, work_pool_name=pool.name, max_runs=4)
    assert [run.flow_run.id for run in got] == [*bulk_runs, *first_runs]


def test_queues_of_equal_priority_are_claimed_from_together_earliest_run_first(
    api: Api,
) -> None:
    pool = _pool(api)  # its "default" queue has priority 1
    api.work_pools.CreateWorkQueue(
        work_pools_pb2.CreateWorkQueueRequest(
            work_pool_name=pool.name, work_queue=work_pools_pb2.WorkQueue(name="peer", priority=1)
        )
    )
    default = _deployment(api, work_pool_name=pool.name)
    peer = _deployment(api, work_pool_name=pool.name, work_queue_name="peer")
    # Interleaved in time across the two queues: neither queue goes first as a whole.
    order = [
        _runs(api, deployment.id, 1, scheduled_time=_ago(ago))[0]
        for deployment, ago in ((peer, 6), (default, 5), (peer, 4), (default, 3))
    ]
    # Due at the same moment: the lower run id goes first.
    same_time = _ago(2)
    tied = sorted(
        _runs(api, deployment.id, 1, scheduled_time=same_time)[0] for deployment in (default, peer)
    )

    got = _poll(api, work_pool_name=pool.name, max_runs=3)
    assert [run.flow_run.id for run in got] == order[:3]
    got = _poll(api, work_pool_name=pool.name, max_runs=3)
    assert [run.flow_run.id for run in got] == [order[3], *tied]


def test_a_paused_pool_hands_out_nothing_and_a_pool_limit_caps_claims(api: Api) -> None:
    pool = _pool(api, concurrency_limit=2)
    deployment = _deployment(api, work_pool_name=pool.name)
    _runs(api, deployment.id, 5)
    paused = work_pools_pb2.UpdateWorkPoolRequest(
        name=pool.name,
        work_pool=work_pools_pb2.WorkPool(paused=True),
        update_mask=field_mask_pb2.FieldMask(paths=["paused"]),
    )
    api.work_pools.UpdateWorkPool(paused)
    assert _poll(api, work_pool_name=pool.name, max_runs=5) == []

    paused.work_pool.paused = False
    api.work_pools.UpdateWorkPool(paused)
    assert len(_poll(api, work_pool_name=pool.name, max_runs=5)) == 2
    assert _poll(api, work_pool_name=pool.name, max_runs=5) == []


def test_the_heartbeat_names_the_runs_being_cancelled_or_gone(api: Api) -> None:
    deployment = _deployment(api)
    kept, cancelled = _runs(api, deployment.id, 2)
    _poll(api, deployment_ids=[deployment.id], max_runs=2)
    api.flow_runs.CancelFlowRun(flow_runs_pb2.CancelFlowRunRequest(flow_run_id=cancelled))
    gone = str(uuid.uuid4())

    answer = api.workers.Heartbeat(
        W.HeartbeatRequest(worker_name="w", flow_run_ids=[kept, cancelled, gone])
    )

    assert list(answer.cancel_flow_run_ids) == [cancelled, gone]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"deployment_ids": [str(uuid.uuid4())]}, "worker_name", "required"),
        ({"worker_name": "w"}, "work_pool_name", "is required"),
        (
            {"worker_name": "w", "work_pool_name": "p", "deployment_ids": [str(uuid.uuid4())]},
            "deployment_ids",
            "not both",
        ),
        ({"worker_name": "w", "deployment_ids": ["nope"]}, "deployment_ids[0]", "not a valid UUID"),
        (
            {"worker_name": "w", "deployment_ids": [str(uuid.uuid4())], "work_queue_names": ["q"]},
            "work_queue_names",
            "needs work_pool_name",
        ),
        (
            {"worker_name": "w", "deployment_ids": [str(uuid.uuid4())], "max_runs": 1001},
            "max_runs",
            "out of range",
        ),
        (
            {
                "worker_name": "w",
                "deployment_ids": [str(uuid.uuid4())],
                "wait": duration_pb2.Duration(seconds=-1),
            },
            "wait",
            "",
        ),
    ],
)
def test_bad_polls_are_invalid_argument_naming_the_field(
    api: Api, fields: dict[str, Any], field: str, words: str
) -> None:
    error = _error(api, **fields)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.fields == [field]
    assert words in error.message


def test_unknown_pools_queues_and_deployments_are_not_found(api: Api) -> None:
    pool = _pool(api)
    missing = str(uuid.uuid4())
    for fields, words in [
        ({"work_pool_name": _unique("nowhere")}, "work pool"),
        ({"work_pool_name": pool.name, "work_queue_names": ["nope"]}, "work queue"),
        ({"deployment_ids": [missing]}, missing),
    ]:
        error = _error(api, worker_name="w", **fields)
        assert error.code == grpc.StatusCode.NOT_FOUND, fields
        assert words in error.message


def test_a_bad_heartbeat_is_invalid_argument_naming_the_field(api: Api) -> None:
    for request, field in [
        (W.HeartbeatRequest(flow_run_ids=[str(uuid.uuid4())]), "worker_name"),
        (W.HeartbeatRequest(worker_name="w", flow_run_ids=["x"]), "flow_run_ids[0]"),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            api.workers.Heartbeat(request)
        error = error_details(caught.value)
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert error.fields == [field]
