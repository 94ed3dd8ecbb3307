"""``headwater deployment ls | inspect | run | pause | resume``: deployments from the terminal.

Every command that takes a deployment accepts its id, "flow-name/deployment-name", or its name
alone when only one flow has a deployment of that name.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from headwater.cli._common import CommandError, open_client, positive_int

if TYPE_CHECKING:
    from headwater._deployment_records import Deployment
    from headwater.client import HeadwaterClient

_DEPLOYMENT_HELP = "the deployment: 'flow-name/deployment-name', its name alone, or its id"
#: How many recent runs `deployment inspect` shows.
RECENT_RUNS = 10


def register(commands: Any) -> None:
    """Add the ``deployment`` command group."""
    group = commands.add_parser(
        "deployment", help="list, inspect, run, pause and resume deployments"
    )
    actions = group.add_subparsers(title="deployment commands", metavar="COMMAND", required=True)

    ls = actions.add_parser("ls", help="list deployments, newest first")
    ls.add_argument("--flow", default="", help="only deployments of the flow with this name")
    ls.add_argument(
        "--limit", type=positive_int, default=50, help="how many deployments (default 50)"
    )
    ls.set_defaults(handler=list_deployments)

    inspect = actions.add_parser(
        "inspect", help="show a deployment's settings, schedules and recent runs"
    )
    inspect.add_argument("deployment", metavar="NAME", help=_DEPLOYMENT_HELP)
    inspect.set_defaults(handler=inspect_deployment)

    run = actions.add_parser(
        "run", help="create a run of a deployment, due now (a worker or `serve` runs it)"
    )
    run.add_argument("deployment", metavar="NAME", help=_DEPLOYMENT_HELP)
    run.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter; VALUE is read as JSON when it parses (5, true, [1, 2]), else as text; "
        "repeatable",
    )
    run.add_argument("--params", default="", metavar="JSON", help="parameters as one JSON object")
    run.add_argument(
        "--job-variable",
        "-jv",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='a job variable for this run, over the deployment\'s (env=\'{"X": "1"}\', '
        "working_dir=/path); VALUE is read as JSON when it parses, else as text; repeatable",
    )
    run.add_argument("--tag", action="append", default=[], help="a tag for the run; repeatable")
    run.add_argument("--flow-run-name", default="", help="the run's name (generated if not given)")
    run.add_argument(
        "--idempotency-key", default="", help="a key that makes this run exist only once"
    )
    run.add_argument(
        "--watch",
        action="store_true",
        help="follow the run until it ends; exit 0 if it completes, 1 otherwise",
    )
    run.set_defaults(handler=run_deployment)

    pause = actions.add_parser(
        "pause", help="pause a deployment: no scheduled runs, runs on request refused"
    )
    pause.add_argument("deployment", metavar="NAME", help=_DEPLOYMENT_HELP)
    pause.set_defaults(handler=pause_deployment)

    resume = actions.add_parser("resume", help="resume a paused deployment")
    resume.add_argument("deployment", metavar="NAME", help=_DEPLOYMENT_HELP)
    resume.set_defaults(handler=resume_deployment)


def list_deployments(args: argparse.Namespace) -> int:
    """Print a table of deployments."""
    from headwater.cli import _deployment_tables, _render

    with open_client() as client:
        deployments = client.list_deployments(flow_name=args.flow, limit=args.limit)
    out = _render.console()
    if not deployments:
        out.print("No deployments found.")
        return 0
    out.print(_deployment_tables.deployments_table(deployments))
    return 0


def inspect_deployment(args: argparse.Namespace) -> int:
    """Print one deployment, its schedules and its recent runs."""
    from headwater.cli import _deployment_tables, _render

    with open_client() as client:
        deployment = find_deployment(client, args.deployment)
        runs = client.list_flow_runs(deployment_id=deployment.id, limit=RECENT_RUNS)
    out = _render.console()
    out.print(_deployment_tables.deployment_details(deployment))
    out.print()
    if deployment.schedules:
        out.print(f"[bold]Schedules ({len(deployment.schedules)})[/]")
        out.print(_deployment_tables.schedules_table(deployment))
    else:
        out.print("[bold]Schedules[/]: none")
    out.print()
    if runs:
        out.print(f"[bold]Recent runs ({len(runs)})[/]")
        out.print(_render.flow_runs_table(runs))
    else:
        out.print("[bold]Recent runs[/]: none")
    return 0


def parse_parameters(pairs: list[str], params: str) -> dict[str, Any]:
    """The parameters of ``--params JSON`` with each ``--param KEY=VALUE`` over them.

    Raises:
        CommandError: A pair without "=", or ``--params`` that is not a JSON object.
    """
    parameters: dict[str, Any] = {}
    if params:
        try:
            parameters = json.loads(params)
        except ValueError as exc:
            raise CommandError(f"--params is not valid JSON ({exc}).") from None
        if not isinstance(parameters, dict):
            raise CommandError("--params must be a JSON object, such as '{\"limit\": 5}'.")
    parameters.update(key_values(pairs, "--param", "limit=5"))
    return parameters


def key_values(pairs: list[str], option: str, example: str) -> dict[str, Any]:
    """``KEY=VALUE`` pairs given with ``option``, each VALUE read as JSON when it parses.

    Raises:
        CommandError: A pair without "=" (the message shows ``example``).
    """
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"{option} {pair!r} is not KEY=VALUE (for example {example}).")
        try:
            values[key] = json.loads(text)
        except ValueError:
            values[key] = text
    return values


def run_deployment(args: argparse.Namespace) -> int:
    """Create a run of a deployment and say where it will run; with ``--watch``, follow it."""
    from headwater.cli import _render

    parameters = parse_parameters(args.param, args.params)
    job_variables = key_values(args.job_variable, "--job-variable", "working_dir=/srv/etl")
    with open_client() as client:
        deployment = find_deployment(client, args.deployment)
        run = client.create_flow_run_from_deployment(
            deployment.id,
            parameters=parameters,
            name=args.flow_run_name or None,
            tags=args.tag,
            idempotency_key=args.idempotency_key or None,
            job_variables=job_variables or None,
        )
    out = _render.console()
    out.print(
        f"Created flow run [bold]{_render.escape(run.name)}[/] ({run.id}) of deployment "
        f"[bold]{_render.escape(deployment.full_name)}[/]"
    )
    scheduled = run.state.scheduled_time if run.state is not None else None
    out.print(f"  Parameters: {_render.escape(json.dumps(run.parameters))}")
    if run.job_variables:
        out.print(f"  Job variables: {_render.escape(json.dumps(run.job_variables))}")
    out.print(f"  Scheduled:  {_render.timestamp(scheduled)}")
    if deployment.work_pool_name:
        where = f"{deployment.work_pool_name}/{deployment.work_queue_name}"
        out.print(f"  Work pool:  {_render.escape(where)} (a worker of the pool runs it)")
    else:
        out.print("  Runs in:    the process serving this deployment")
    if not args.watch:
        out.print(f"Follow it with `headwater flow-run watch {run.id}`.")
        return 0
    from headwater.cli._flow_runs import watch_run

    return watch_run(argparse.Namespace(run=run.id))


def pause_deployment(args: argparse.Namespace) -> int:
    """Pause a deployment and say what that means."""
    with open_client() as client:
        deployment = client.pause_deployment(find_deployment(client, args.deployment).id)
    _say_status(deployment, "paused: its schedules create no runs, and runs on request are refused")
    return 0


def resume_deployment(args: argparse.Namespace) -> int:
    """Resume a paused deployment."""
    with open_client() as client:
        deployment = client.resume_deployment(find_deployment(client, args.deployment).id)
    _say_status(deployment, "resumed: its active schedules create runs again")
    return 0


def _say_status(deployment: Deployment, what: str) -> None:
    from headwater.cli import _render

    _render.console().print(
        f"Deployment [bold]{_render.escape(deployment.full_name)}[/] ({deployment.id}) {what}."
    )


def find_deployment(client: HeadwaterClient, reference: str) -> Deployment:
    """The deployment a person named: by id, by "flow/deployment", or by a name only one flow
    uses.

    Raises:
        CommandError: Nothing matches, or several flows have a deployment of that name.
    """
    import uuid

    from headwater.exceptions import ObjectNotFound

    is_id = True
    try:
        uuid.UUID(reference)
    except ValueError:
        is_id = False
    if is_id or "/" in reference:
        try:
            return client.get_deployment(reference)
        except ObjectNotFound:
            raise CommandError(
                f"No deployment is named or has the id '{reference}'; `headwater deployment "
                "ls` lists them."
            ) from None
    matches = client.list_deployments(name=reference, limit=11)
    if not matches:
        raise CommandError(
            f"No deployment is named '{reference}'; give 'flow-name/deployment-name' or an id, "
            "as `headwater deployment ls` shows them."
        )
    if len(matches) > 1:
        names = ", ".join(f"'{d.full_name}'" for d in matches[:10])
        raise CommandError(
            f"Several flows have a deployment named '{reference}': {names}. Give one as "
            "'flow-name/deployment-name'."
        )
    return matches[0]
