"""`Flow.visualize()`: the flow's task graph, drawn without running any task.

The flow function runs with a `TaskGraph` active (a context variable). Every task call, submit,
map and subflow call made meanwhile records a node instead of running, and gives the flow a
stand-in for what it would have returned: a `Placeholder` for a result, a `PlaceholderFuture`
for a future. A stand-in passed to a later call (as an argument, inside a list or dict, or in
``wait_for``) becomes an edge. Code of the flow that is not a task still runs, as in Prefect;
code that uses a task's result directly (arithmetic, iteration) cannot, and says so, unless
the task has a ``viz_return_value`` (as in Prefect) to stand in for its result.

The graph is Graphviz DOT text; when Graphviz's ``dot`` program is on the PATH it is also
rendered to ``<flow name>.png`` in the working directory (Prefect renders the same file and
opens a viewer; here nothing is opened, so it also works on servers and in CI).

Example:
    >>> @flow
    ... def etl():
    ...     rows = extract()
    ...     load(transform(rows))
    >>> print(etl.visualize())  # digraph "etl" { ... "extract-0" -> "transform-0" ... }
"""

from __future__ import annotations

import contextvars
import inspect
import uuid
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.exceptions import FlowVisualizationError

if TYPE_CHECKING:
    from pathlib import Path

    from headwater._states import State

__all__ = [
    "DotText",
    "Placeholder",
    "PlaceholderFuture",
    "PlaceholderFutureList",
    "TaskGraph",
    "TaskNode",
    "active_graph",
    "visualize_flow",
]

#: How deep arguments are searched for stand-ins (lists of dicts of tuples ...).
MAX_ARGUMENT_DEPTH = 20

_active: contextvars.ContextVar[TaskGraph | None] = contextvars.ContextVar(
    "headwater_task_graph", default=None
)


def active_graph() -> TaskGraph | None:
    """The graph being recorded by `Flow.visualize()`, or None when calls should really run.

    `Task.__call__`, `Task.submit`, `Task.map` and `Flow.__call__` check this first.
    """
    return _active.get()


@dataclass(eq=False)
class TaskNode:
    """One recorded call: a task run (or subflow run) the flow would make.

    Attributes:
        name: The node's label, unique in the graph: the task's name and its call number
            ("extract-0", "extract-1", ...), as Prefect labels them.
        kind: "task" or "flow" (a subflow call).
        upstream: The nodes whose stand-ins this call received, in the order first seen.
    """

    name: str
    kind: str = "task"
    upstream: list[TaskNode] = field(default_factory=list)


class Placeholder:
    """Stands for the result of a task call while the flow is being visualized."""

    __slots__ = ("node",)

    def __init__(self, node: TaskNode) -> None:
        self.node = node

    def __repr__(self) -> str:
        return f"<result of {self.node.name}>"


class PlaceholderFuture:
    """Stands for the future `Task.submit` returns while the flow is being visualized.

    It has a future's methods: waiting returns at once and the result is a `Placeholder`.
    """

    __slots__ = ("node", "task_run_id", "value")

    def __init__(self, node: TaskNode, value: Any = None) -> None:
        self.node = node
        self.value = Placeholder(node) if value is None else value
        self.task_run_id = str(uuid.uuid4())

    @property
    def state(self) -> State[Any]:
        from headwater._states import Pending

        return Pending(message="Not run: the flow is being visualized.")

    def wait(self, timeout: float | None = None) -> None:
        return None

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        return self.value

    def add_done_callback(self, fn: Any) -> None:
        fn(self)

    def __repr__(self) -> str:
        return f"<future of {self.node.name}>"


class PlaceholderFutureList(list[PlaceholderFuture]):
    """What `Task.map` returns while visualizing: one stand-in future per mapped call."""

    def wait(self, timeout: float | None = None) -> None:
        return None

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[Any]:
        return [future.result() for future in self]


class TaskGraph:
    """The calls a flow function makes, recorded in order, with their data dependencies."""

    def __init__(self, flow_name: str) -> None:
        self.flow_name = flow_name
        self.nodes: list[TaskNode] = []
        self._calls: dict[str, int] = {}
        # viz_return_value objects handed out, by id, and kept alive so no id is reused.
        self._returned: dict[int, tuple[Any, TaskNode]] = {}

    # -- recording ---------------------------------------------------------------------------

    def node(
        self, name: str, parameters: dict[str, Any], wait_for: Iterable[Any] | None, kind: str
    ) -> TaskNode:
        """Add a node for one call, with an edge from every stand-in among its inputs."""
        number = self._calls.get(name, 0)
        self._calls[name] = number + 1
        node = TaskNode(f"{name}-{number}", kind)
        for upstream in _stand_ins([parameters, list(wait_for or ())], self._returned):
            if upstream not in node.upstream:
                node.upstream.append(upstream)
        self.nodes.append(node)
        return node

    def record_call(
        self,
        runnable: Any,
        parameters: dict[str, Any],
        wait_for: Iterable[Any] | None = None,
        *,
        kind: str = "task",
    ) -> Any:
        """A task (or subflow) call: its result's stand-in, awaitable for an async function.

        The stand-in is the task's ``viz_return_value`` when it has one (a value the flow's
        code can work with; passed on to a later call it still draws an edge, unless it is a
        singleton such as None, True or a small int), else a `Placeholder`.
        """
        node = self.node(runnable.name, parameters, wait_for, kind)
        result = self._stand_in(runnable, node)
        if getattr(runnable, "isasync", False):
            return _resolved(result)
        return result

    def _stand_in(self, runnable: Any, node: TaskNode) -> Any:
        value = getattr(runnable, "viz_return_value", None)
        if value is None:
            return Placeholder(node)
        self._returned[id(value)] = (value, node)
        return value

    def record_submit(
        self, task: Any, parameters: dict[str, Any], wait_for: Iterable[Any] | None = None
    ) -> PlaceholderFuture:
        """A ``.submit()``: a stand-in future (its result is the call's stand-in)."""
        node = self.node(task.name, parameters, wait_for, "task")
        return PlaceholderFuture(node, self._stand_in(task, node))

    def record_map(
        self, task: Any, parameters: dict[str, Any], wait_for: Iterable[Any] | None = None
    ) -> PlaceholderFutureList:
        """A ``.map()``: one node per item of the mapped arguments.

        An argument whose length is unknown while visualizing (a stand-in for an upstream's
        result) maps to a single node that stands for all of its calls.

        Raises:
            FlowVisualizationError: No argument is iterable, or the mapped arguments differ
                in length (the real ``.map()`` refuses both too).
        """
        iterables, static = _split_mapped(parameters)
        lengths = {key: len(values) for key, values in iterables.items() if values is not None}
        if not iterables or len(set(lengths.values())) > 1:
            shown = ", ".join(f"{key}={length}" for key, length in lengths.items()) or "none"
            raise FlowVisualizationError(
                f"{task.name}.map() needs iterable arguments of one length (got {shown}); it "
                "would fail when the flow runs, too."
            )
        count = next(iter(lengths.values())) if len(lengths) == len(iterables) else 1
        futures = PlaceholderFutureList()
        for index in range(count):
            call = dict(static)
            for key, values in iterables.items():
                call[key] = parameters[key] if values is None else values[index]
            futures.append(self.record_submit(task, call, wait_for))
        return futures

    # -- output ------------------------------------------------------------------------------

    def edges(self) -> Iterator[tuple[TaskNode, TaskNode]]:
        """(upstream, downstream) pairs, in call order."""
        for node in self.nodes:
            for upstream in node.upstream:
                yield upstream, node

    def to_dot(self) -> str:
        """The graph as Graphviz DOT text: left to right, one box per call (subflows doubled)."""
        lines = [f"digraph {_quoted(self.flow_name)} {{", "  rankdir=LR;", "  node [shape=box];"]
        for node in self.nodes:
            style = " [peripheries=2]" if node.kind == "flow" else ""
            lines.append(f"  {_quoted(node.name)}{style};")
        for upstream, downstream in self.edges():
            lines.append(f"  {_quoted(upstream.name)} -> {_quoted(downstream.name)};")
        lines.append("}")
        return "\n".join(lines) + "\n"


class DotText(str):
    """DOT text that may also be awaited, giving itself.

    Prefect's ``visualize()`` is awaited inside async code (``await my_flow.visualize()``) and
    called plainly elsewhere; this text works both ways, so either spelling ports unchanged.
    """

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, str]:
        return str(self)
        yield  # pragma: no cover - makes this a generator, as __await__ must return one


def visualize_flow(flow: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> DotText:
    """Run ``flow``'s function with task calls recorded, and return the graph as DOT text.

    Renders ``<flow name>.png`` too when Graphviz's ``dot`` is installed.

    Raises:
        FlowVisualizationError: The flow's code failed while visualizing, most often because
            it used a task's result directly; the original error is its ``__cause__``.
    """
    graph = TaskGraph(flow.name)
    token = _active.set(graph)
    try:
        outcome = flow.fn(*args, **kwargs)
        if inspect.isawaitable(outcome):
            _run_coroutine(outcome)
    except FlowVisualizationError:
        raise
    except Exception as exc:
        raise FlowVisualizationError(
            f"Visualizing flow {flow.name!r} failed: {type(exc).__name__}: {exc}. While "
            "visualizing, task calls do not run and return placeholders, so flow code that "
            "uses a task's result directly (arithmetic, iteration, comparisons) cannot run. "
            "Give the task a value to return while visualizing, e.g. "
            "@task(viz_return_value=[1, 2, 3]), or move that code into a task."
        ) from exc
    finally:
        _active.reset(token)
    dot = DotText(graph.to_dot())
    render(dot, flow.name)
    return dot


def render(dot: str, name: str) -> Path | None:
    """Write ``<name>.png`` from DOT text with Graphviz's ``dot``, when it is installed.

    Returns:
        The image's path, or None when ``dot`` is not on the PATH (the text is still returned
        to the caller, who can render it elsewhere).

    Raises:
        FlowVisualizationError: ``dot`` is installed but refused the graph.
    """
    import logging
    import shutil
    import subprocess
    from pathlib import Path

    program = shutil.which("dot")
    if program is None:
        return None
    target = Path(f"{_file_stem(name)}.png").absolute()
    done = subprocess.run(
        [program, "-Tpng", "-o", str(target)],
        input=dot.encode(),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise FlowVisualizationError(
            f"Graphviz could not render the graph of flow {name!r}: "
            f"{done.stderr.decode(errors='replace').strip()}"
        )
    logging.getLogger("headwater.flows").info("Flow graph rendered to %s", target)
    return target


# -- helpers -------------------------------------------------------------------------------


async def _resolved(value: Any) -> Any:
    return value


def _run_coroutine(awaitable: Any) -> None:
    """Run an async flow function to its end, also when called from inside an event loop."""
    import asyncio

    async def main() -> None:
        await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
        return
    # A running loop (a notebook, an async caller) cannot be re-entered: use a thread.
    import concurrent.futures

    context = contextvars.copy_context()  # keeps the active graph
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(context.run, asyncio.run, main()).result()


def _stand_ins(
    value: Any, returned: dict[int, tuple[Any, TaskNode]], depth: int = 0
) -> Iterator[TaskNode]:
    """The nodes of every stand-in inside ``value`` (lists, tuples, sets, dicts, wrappers)."""
    if depth > MAX_ARGUMENT_DEPTH:
        return
    if isinstance(value, Placeholder | PlaceholderFuture):
        yield value.node
        return
    found = returned.get(id(value))
    if found is not None and found[0] is value:  # a task's viz_return_value, passed on
        yield found[1]
        return
    if isinstance(value, dict):
        for item in value.values():
            yield from _stand_ins(item, returned, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _stand_ins(item, returned, depth + 1)
    elif callable(getattr(value, "unwrap", None)):  # unmapped(...), allow_failure(...), quote
        yield from _stand_ins(value.unwrap(), returned, depth + 1)


def _split_mapped(
    parameters: dict[str, Any],
) -> tuple[dict[str, list[Any] | None], dict[str, Any]]:
    """(mapped arguments as lists, None when the length is unknown; the others)."""
    iterables: dict[str, list[Any] | None] = {}
    static: dict[str, Any] = {}
    for key, value in parameters.items():
        inner = value.unwrap() if callable(getattr(value, "unwrap", None)) else value
        if type(value).__name__ == "unmapped":
            static[key] = inner
        elif isinstance(inner, Placeholder | PlaceholderFuture):
            iterables[key] = None  # an upstream's result: its length is not known here
        elif isinstance(inner, str | bytes) or not _iterable(inner):
            static[key] = value
        else:
            iterables[key] = list(inner)
    return iterables, static


def _iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _quoted(text: str) -> str:
    """A DOT identifier: double-quoted, with quotes and backslashes escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _file_stem(name: str) -> str:
    """The flow's name as a file name: path separators and other awkward characters out."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "flow"
