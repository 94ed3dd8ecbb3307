"""Task runners that run task calls in other processes: a process pool, or Dask workers.

The flow's process keeps the futures; the task runs themselves execute elsewhere and report
their own states to the flow's service, over a stream the other process opens to the address
the parent passes along (the embedded server listens on an abstract unix socket, which every
process on this machine can open).

- `child`: what runs in the other process (point it at the service, make the call's flow
  run current, run the shipped call, send the final state back) and what the parent packs;
- `dispatch`: the parent's bookkeeping: wait for upstream futures without blocking submit,
  then ship; finish a future with the state that came back;
- `crash`: the parent's answer when the process running a task died: CRASHED, proposed for
  the task run the parent chose the id of;
- `process`: `ProcessPoolTaskRunner`;
- `dask`: `DaskTaskRunner` (imports dask only when a runner starts).

Both runners are exported by `headwater.task_runners`. Children and local Dask workers are
spawned, never forked: the flow's process runs gRPC, which a forked child cannot inherit.
"""
