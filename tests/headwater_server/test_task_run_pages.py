"""Pages of task runs (`Repository.list_task_runs`) on SQLite and PostgreSQL.

A page's runs are built from plain dicts of its rows, in the response itself (see
`read_run_rows`); `get_task_run` builds each run from its row on its own. Whatever a run
carries (tags, a policy, a cache entry's expiry, a scheduled time, a result, a failure), a page
shows it as a get does, and paging in either order shows every run once.
"""

from __future__ import annotations

import datetime as dt

from google.protobuf import duration_pb2, timestamp_pb2
from headwater.v1 import flow_runs_pb2, states_pb2, task_runs_pb2
from headwater_server.storage.repository import Repository

RUNNING = states_pb2.STATE_TYPE_RUNNING
COMPLETED = states_pb2.STATE_TYPE_COMPLETED
FAILED = states_pb2.STATE_TYPE_FAILED
SCHEDULED = states_pb2.STATE_TYPE_SCHEDULED


def _stamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _create(repository: Repository, **fields: object) -> task_runs_pb2.TaskRun:
    request = task_runs_pb2.CreateTaskRunRequest(task_key="t", **fields)  # type: ignore[arg-type]
    return repository.create_task_run(request).task_run


def _set(repository: Repository, run_id: str, state: states_pb2.State) -> None:
    response = repository.set_task_run_state(
        task_runs_pb2.SetTaskRunStateRequest(task_run_id=run_id, state=state)
    )
    assert response.result.decision == states_pb2.DECISION_ACCEPT


def _runs_of_every_kind(repository: Repository, flow_run_id: str) -> list[str]:
    """Task runs that use every column a TaskRun is built from, in creation order."""
    policy = states_pb2.RunPolicy(
        retries=2,
        retry_delay=duration_pb2.Duration(seconds=1, nanos=500_000_000),
        retry_delays=[duration_pb2.Duration(seconds=3), duration_pb2.Duration(seconds=7)],
        retry_jitter_factor=0.25,
        timeout=duration_pb2.Duration(seconds=90),
    )
    pending = _create(
        repository,
        flow_run_id=flow_run_id,
        dynamic_key="pending",
        name="ünïcode name",
        tags=["b", "a"],
        parameters_json='{"x": [1, 2.5, "three"], "big": 123456789012345678901234567890}',
        cache_key="key",
        cache_expiration_time=_stamp(dt.datetime(2100, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)),
        policy=policy,
    )
    running = _create(repository, flow_run_id=flow_run_id, dynamic_key="running", start=True)
    completed = _create(repository, flow_run_id=flow_run_id, dynamic_key="completed", start=True)
    _set(
        repository,
        completed.id,
        states_pb2.State(type=COMPLETED, result=states_pb2.StateResult(json='{"ok": true}')),
    )
    failed = _create(repository, flow_run_id=flow_run_id, dynamic_key="failed", start=True)
    _set(
        repository,
        failed.id,
        states_pb2.State(
            type=FAILED,
            message="it broke",
            failure=states_pb2.Failure(exception_type="builtins.ValueError", message="no"),
        ),
    )
    scheduled = _create(
        repository,
        flow_run_id=flow_run_id,
        dynamic_key="scheduled",
        state=states_pb2.State(
            type=SCHEDULED, scheduled_time=_stamp(dt.datetime(2099, 5, 6, tzinfo=dt.UTC))
        ),
    )
    return [pending.id, running.id, completed.id, failed.id, scheduled.id]


def _without_live_time(run: task_runs_pb2.TaskRun) -> task_runs_pb2.TaskRun:
    """The run without its total run time, which a RUNNING run's every read computes anew."""
    copy = task_runs_pb2.TaskRun()
    copy.CopyFrom(run)
    if copy.state.type == RUNNING:
        copy.ClearField("total_run_time")
    return copy


def _all_pages(
    repository: Repository, flow_run_id: str, page_size: int, newest_first: bool
) -> list[task_runs_pb2.TaskRun]:
    request = task_runs_pb2.ListTaskRunsRequest(
        page_size=page_size,
        filter=task_runs_pb2.TaskRunFilter(flow_run_id=flow_run_id),
        newest_first=newest_first,
    )
    runs: list[task_runs_pb2.TaskRun] = []
    while True:
        page = repository.list_task_runs(request)
        assert len(page.task_runs) <= page_size
        runs.extend(page.task_runs)
        if not page.next_page_token:
            return runs
        request.page_token = page.next_page_token


def test_a_listed_task_run_is_the_task_run_a_get_returns(repository: Repository) -> None:
    flow_run = repository.create_flow_run(
        flow_runs_pb2.CreateFlowRunRequest(flow_name="pages")
    ).flow_run
    ids = _runs_of_every_kind(repository, flow_run.id)
    got = [
        repository.get_task_run(task_runs_pb2.GetTaskRunRequest(task_run_id=run_id)).task_run
        for run_id in ids
    ]
    # The columns each kind exercises really are set (the comparison below means something).
    pending, running, completed, failed, scheduled = got
    assert pending.HasField("cache_expiration_time") and list(pending.tags) == ["b", "a"]
    assert len(pending.policy.retry_delays) == 2 and pending.policy.HasField("timeout")
    assert running.state.type == RUNNING and running.HasField("start_time")
    assert completed.state.result.json == '{"ok": true}' and completed.HasField("end_time")
    assert failed.state.failure.exception_type == "builtins.ValueError"
    assert scheduled.state.HasField("scheduled_time")

    listed = repository.list_task_runs(
        task_runs_pb2.ListTaskRunsRequest(
            filter=task_runs_pb2.TaskRunFilter(flow_run_id=flow_run.id)
        )
    ).task_runs
    assert [_without_live_time(run) for run in listed] == [_without_live_time(g) for g in got]
    assert listed[1].total_run_time.ToTimedelta() >= running.total_run_time.ToTimedelta()


def test_pages_of_any_size_show_every_run_once_in_either_order(repository: Repository) -> None:
    flow_run = repository.create_flow_run(
        flow_runs_pb2.CreateFlowRunRequest(flow_name="pages")
    ).flow_run
    ids = _runs_of_every_kind(repository, flow_run.id)
    ids += [_create(repository, flow_run_id=flow_run.id, dynamic_key=str(i)).id for i in range(4)]
    for page_size in (1, 2, 3, len(ids) - 1, len(ids), len(ids) + 1):
        oldest_first = _all_pages(repository, flow_run.id, page_size, newest_first=False)
        assert [run.id for run in oldest_first] == ids, page_size
        newest_first = _all_pages(repository, flow_run.id, page_size, newest_first=True)
        assert [run.id for run in newest_first] == ids[::-1], page_size
