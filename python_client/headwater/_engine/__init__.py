"""The engine: runs a runnable (a flow or a task) and reports every state to the service.

A call creates a run (PENDING), proposes RUNNING, calls the function in the caller's thread
(or awaits it), and proposes the final state: three round trips for a trivial run. The service
decides; the engine obeys each `Decision`:

- ACCEPT: carry on.
- REJECT: follow the state the service kept. After a failure that state is AwaitingRetry while
  retries remain (retries are the service's decision), so the engine proposes RUNNING named
  "Retrying" and runs the function again; a final state ends the run as the service says.
- WAIT: sleep the given delay and propose again (a retry delay, a scheduled start).
- ABORT: stop without running the code; another engine owns the run.

Hooks run on the client after the state they react to is stored; a failing hook is logged and
never changes the run's state. Interrupts (Ctrl-C, SIGTERM, an enclosing run's timeout) mark the
run CRASHED and propagate. A run cancelled through the API (CANCELLING) is noticed by a watch
that starts once the code has run for half a second; the code is interrupted like a timeout,
the run (and the subflow it was running) is reported CANCELLED, and the call raises
`CancelledRun`.

The engine speaks SDK types only (`State`, `FlowRun`, and the `Decision`, `Proposal` and
`FlowRunSpec` of `headwater._transport.interface`) and reaches the service through the
`Transport` it is handed; it imports no gRPC, no generated code, and nothing of
`headwater._flows`: what it needs of a flow is the `Runnable` protocol.

- `entry`: `run` (a flow), the entry point, and `drive` (hand a call to its driver);
- `calls`: `run_task` and `run_task_call` (a task call, here or in another process);
- `task_call`: `TaskCall`, one task call as data, and resolving its upstream futures;
- `submissions`: the task runner a run's code submits to;
- `runnable`: what the engine needs of what it runs;
- `drivers`: plain sync and async functions (the order of the steps);
- `generators`: sync and async generator functions;
- `machine`: the state machine (what each decision means);
- `run`: the run as the service sees it (create, propose, ship logs) through the transport;
- `tasks`: `TaskEngine`, the same state machine over a task run's I/O;
- `setup`: the run to create, run names, the function's arguments;
- `outcomes`: the state to propose for a value, a returned state, an error;
- `hooks`: state-change hooks;
- `interrupts`: SIGTERM, Ctrl-C, and the running context;
- `cancel`: watching a running run for CANCELLING and interrupting its code;
- `timeouts`: time limits for sync code running in the caller's thread.
"""
