"""Headwater in one minute: a flow with tasks, a subflow and a retry, on the embedded default.

`make demo` runs this with no server to start: the first flow call starts the Headwater service
in-process (real gRPC over a local socket, SQLite in $HEADWATER_HOME, default ~/.headwater).
While the flow runs, the main thread watches it through the service's WatchFlowRun stream and
prints each state the moment the service stores it, the way any other client would see it:
the flow run's own states, and its task runs' states under each task run's name.
"""

from __future__ import annotations

import threading

from headwater import flow, task
from headwater.client import FlowRunEvent, HeadwaterClient

started = threading.Event()
run_ids: list[str] = []
attempts = 0


def remember_run(flow, flow_run, state) -> None:  # type: ignore[no-untyped-def]
    """on_running hook: hand the run id to the watcher (only the first attempt's)."""
    if not run_ids:
        run_ids.append(flow_run.id)
        started.set()


@flow(log_prints=True)
def extract(rows: int) -> list[int]:
    """A subflow: its run is linked to the parent run in the service."""
    print(f"extracting {rows} rows")
    return list(range(rows))


@task
def double(value: int) -> int:
    """A task: mapped over the rows, each call runs on the flow's thread pool as its own run."""
    return value * 2


@task(log_prints=True)
def load(values: list[int]) -> int:
    """Gets the mapped futures' results: a future passed as an argument resolves first."""
    total = sum(values)
    print(f"loaded {len(values)} rows, total {total}")
    return total


@flow(retries=1, retry_delay_seconds=0.5, log_prints=True, on_running=[remember_run])
def etl(rows: int = 5) -> int:
    """Fails its first attempt on purpose, so the service's retry path shows in the history."""
    global attempts
    attempts += 1
    data = extract(rows)
    if attempts == 1:
        raise RuntimeError("the source was flaky (on purpose, to show a retry)")
    return load(double.map(data))


def watch(run_id: str) -> None:
    """Print every state of the run as the service streams it, until the run finishes."""
    with HeadwaterClient() as client:
        for item in client.watch_flow_run(run_id):
            if not isinstance(item, FlowRunEvent):
                continue
            if item.state is not None:
                state = item.state
                detail = f" - {state.message}" if state.message else ""
                print(f"  [watch] #{item.sequence} {state.name}{detail}", flush=True)
            elif item.task_run_state is not None:
                name = item.task_run_state.name
                print(f"  [task]  #{item.sequence} {item.task_run_name}: {name}", flush=True)


def main() -> None:
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(etl("5")), name="demo-flow")
    runner.start()  # "5" is validated and coerced to 5, as in Prefect
    if not started.wait(timeout=30):
        raise SystemExit("the demo flow did not start within 30 s; see the log above")
    watch(run_ids[0])
    runner.join()
    with HeadwaterClient() as client:
        run = client.get_flow_run(run_ids[0])
        children = client.list_flow_runs(parent_flow_run_id=run.id)
        task_runs = client.list_task_runs(run.id)
    print(f"\nResult: {result[0]}  (run '{run.name}', run_count {run.run_count})")
    print(f"Subflow runs linked to it: {', '.join(c.name for c in children)}")
    states = sorted({t.state.name for t in task_runs if t.state is not None})
    print(f"Task runs stored: {len(task_runs)}, in states {', '.join(states)}")
    print(f"Try: .venv/bin/headwater flow-run ls; .venv/bin/headwater flow-run inspect {run.id}")


if __name__ == "__main__":
    main()
