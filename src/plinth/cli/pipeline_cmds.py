"""Pipeline commands: ``plinth pipeline run|runs|show|logs``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from plinth.cli.workspace_cmds import HomeOption

if TYPE_CHECKING:
    from rich.table import Table

    from plinth.pipelines.runner import Event
    from plinth.pipelines.service import PipelineRunDetail

pipeline_app = typer.Typer(
    help="Pipelines: run one, list runs, show a run's steps, print a step's log.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="A pipeline parameter NAME=VALUE (repeatable)."),
]
ExecutorOption = Annotated[
    str, typer.Option("--executor", "-e", help="Where steps run: local or ray.")
]
NoCacheOption = Annotated[
    bool, typer.Option("--no-cache", help="Run every step, even those with a cache hit.")
]
STATUS_STYLES = {
    "succeeded": "green",
    "cached": "cyan",
    "running": "yellow",
    "pending": "dim",
    "failed": "red",
    "skipped": "dim",
}
EXECUTORS = ("local", "ray")


def register(app: typer.Typer) -> None:
    """Add the pipeline commands to ``app``."""
    app.add_typer(pipeline_app, name="pipeline")


def seconds(value: float | None) -> str:
    """Format a step's duration: ``12 ms``, ``4.2 s``, ``3 min 5 s``, or ``-``.

    Example:
        >>> seconds(0.0123), seconds(4.25), seconds(185)
        ('12 ms', '4.2 s', '3 min 5 s')
    """
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class _Progress:
    """Shows a run as it goes: a live table on a terminal, one line per event otherwise.

    The live table refreshes only on events (no refresh thread), so step processes are
    forked from a single-threaded parent.
    """

    def __init__(self, order: list[str], executor: str) -> None:
        from plinth.cli.output import console

        self.console = console
        self.order = order
        self.executor = executor
        self.rows: dict[str, list[str]] = {name: ["pending", "", ""] for name in order}
        self.live: Any = None

    def __enter__(self) -> _Progress:
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(
                self._table(), console=self.console, auto_refresh=False, transient=False
            )
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._table(), refresh=True)
            self.live.__exit__(None, None, None)

    def _table(self) -> Table:
        from rich import box
        from rich.table import Table

        from plinth.cli.output import styled

        table = Table(box=box.SIMPLE_HEAD)
        for column in ("step", "status", "time", "detail"):
            table.add_column(column, overflow="fold")
        for name in self.order:
            status, elapsed, detail = self.rows[name]
            table.add_row(name, styled((status, STATUS_STYLES.get(status, ""))), elapsed, detail)
        return table

    def __call__(self, event: Event) -> None:
        from plinth.cli.output import styled

        if event.kind == "run_started":
            self.console.print(
                styled(
                    "Running pipeline ",
                    (event.message or "", "bold"),
                    f" as run {event.run_id}: {len(self.order)} steps, {self.executor} executor.",
                )
            )
            return
        if event.kind == "run_finished" or event.step is None:
            return
        status, detail = event.kind, ""
        if event.kind == "started":
            status = "running"
            if event.attempt > 1:
                detail = f"attempt {event.attempt}/{event.attempts}"
        elif event.kind == "cached":
            detail = f"cache hit from {event.message}"
        elif event.kind == "retrying":
            status = "running"
            detail = (
                f"attempt {event.attempt}/{event.attempts} failed: {event.message}; "
                f"retrying in {seconds(event.seconds)}"
            )
        elif event.kind in ("failed", "skipped"):
            detail = event.message or ""
        elapsed = seconds(event.seconds) if event.kind in ("succeeded", "failed") else ""
        self.rows[event.step] = [status, elapsed, detail]
        if self.live is not None:
            self.live.update(self._table(), refresh=True)
            return
        parts: list[str | tuple[str, str]] = [
            f"  {event.step}: ",
            (status, STATUS_STYLES.get(status, "")),
        ]
        if elapsed:
            parts.append(f" in {elapsed}")
        if detail:
            parts.append(f" ({detail})")
        self.console.print(styled(*parts))


@pipeline_app.command("run")
def run(
    reference: Annotated[
        str, typer.Argument(help="The pipeline: module:function or path/to/file.py:function.")
    ],
    param: ParamOption = None,
    executor: ExecutorOption = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Ray cluster for --executor ray (default: PLINTH_RAY_ADDRESS, RAY_ADDRESS, "
            "else a local Ray).",
        ),
    ] = None,
    no_cache: NoCacheOption = False,
    home: HomeOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run as JSON instead of progress.")
    ] = False,
) -> Any:
    """Run a pipeline: lint its DAG, then run its steps with caching and retries."""
    # Returns the PipelineResult for callers such as 'plinth ci', which pass the parameters
    # by position: keep their order.
    from plinth.cli.output import console, print_json, styled
    from plinth.errors import ConfigError
    from plinth.pipelines.definition import load_pipeline, parse_params
    from plinth.pipelines.executors import Executor, get_executor
    from plinth.pipelines.runner import Runner
    from plinth.workspace import Workspace

    if executor not in EXECUTORS:
        raise ConfigError(f"Unknown executor '{executor}'.", hint="Use --executor local or ray.")
    if ray_address and executor != "ray":
        raise ConfigError("--ray-address needs --executor ray.", hint="Add --executor ray.")
    pipe = load_pipeline(reference)
    dag = pipe.trace(parse_params(param))
    order = dag.lint()
    chosen: Executor = (
        get_executor("ray", address=ray_address) if executor == "ray" else get_executor("local")
    )
    with Workspace(home) as ws:
        progress = _Progress(order, executor)
        runner = Runner(
            ws,
            dag,
            reference=pipe.reference,
            executor=chosen,
            cache=not no_cache,
            on_event=None if as_json else progress,
        )
        if as_json:
            result = runner.run()
            print_json(ws.pipelines.get(result.run_id).to_dict())
        else:
            with progress:
                result = runner.run()
    if not result.succeeded:
        raise runner.failure(result)
    if not as_json:
        ran, cached = result.count("succeeded"), result.count("cached")
        console.print(
            styled(
                (f"Run {result.run_id} succeeded", "green"),
                f" in {seconds(result.duration)}: {ran} ran, {cached} cached.",
            )
        )
    return result


@pipeline_app.command("runs")
def runs(
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only runs of this pipeline.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Most runs to show.")] = 20,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List recent pipeline runs, newest first."""
    from rich import box
    from rich.table import Table

    from plinth.cli.output import console, print_json, styled, when
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        found = client.pipeline_runs(limit=limit, pipeline=pipeline)
    if as_json:
        print_json([r.to_dict() for r in found])
        return
    if not found:
        console.print("No pipeline runs yet.")
        return
    out = Table(box=box.SIMPLE_HEAD)
    for column in ("id", "pipeline", "status", "started (UTC)", "duration", "steps"):
        out.add_column(column, no_wrap=column in ("id", "started (UTC)"))
    for r in found:
        steps = ", ".join(f"{n} {status}" for status, n in r.steps.items())
        out.add_row(
            r.id,
            r.pipeline,
            styled((r.status, STATUS_STYLES.get(r.status, ""))),
            when(r.started_at),
            seconds(r.duration),
            steps,
        )
    console.print(out)


def _print_detail(detail: PipelineRunDetail) -> None:
    from rich import box
    from rich.table import Table

    from plinth.cli.output import console, print_header, styled

    print_header(
        detail.id,
        f"pipeline {detail.pipeline}",
        detail.status,
        STATUS_STYLES.get(detail.status, ""),
        detail.started_at,
        detail.ended_at,
        seconds(detail.duration),
    )
    console.print(
        f"reference {detail.reference}, executor {detail.executor}, by {detail.created_by}"
    )
    if detail.params:
        shown = ", ".join(f"{k}={v}" for k, v in detail.params.items())
        console.print(f"params: {shown}")
    out = Table(box=box.SIMPLE_HEAD, title="steps (in DAG order)")
    for column in ("step", "status", "attempts", "time", "cache", "after", "error"):
        out.add_column(column, overflow="fold")
    for step in detail.steps:
        if step.status == "cached":
            cache = "hit"
        elif step.cache_key and step.status in ("succeeded", "failed"):
            cache = "miss"
        else:
            cache = "-"
        error = ""
        if step.error:
            lines = [line for line in step.error.strip().splitlines() if line.strip()]
            error = lines[-1].strip() if lines else ""
        out.add_row(
            step.name,
            styled((step.status, STATUS_STYLES.get(step.status, ""))),
            str(step.attempts),
            seconds(step.duration) if step.status != "cached" else "-",
            cache,
            ", ".join(step.after) or "-",
            error,
        )
    console.print(out)
    sources: dict[str, list[str]] = {}
    for step in detail.steps:
        if step.status == "cached" and step.cached_from:
            sources.setdefault(step.cached_from, []).append(step.name)
    for run_id, names in sources.items():
        console.print(f"cache hits from run {run_id}: {', '.join(names)}")
    if detail.error:
        console.print(styled(("error: ", "red"), detail.error))
        failed = [s.name for s in detail.steps if s.status == "failed"]
        if failed:
            console.print(f"Traceback: plinth pipeline logs {detail.id} {failed[0]}")


@pipeline_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="Run id (or an unambiguous start of one).")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a run: its DAG with each step's status, attempts, time and cache hit."""
    from plinth.cli.output import print_json
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        detail = client.pipeline_run(run_id)
    if as_json:
        print_json(detail.to_dict())
        return
    _print_detail(detail)


@pipeline_app.command("logs")
def logs(
    run_id: Annotated[str, typer.Argument(help="Run id (or an unambiguous start of one).")],
    step: Annotated[str, typer.Argument(help="The step whose log to print.")],
    home: HomeOption = None,
) -> None:
    """Print a step's captured stdout and stderr (every attempt, with its traceback)."""
    import sys

    from plinth.cli.output import console
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        text = client.pipeline_log(run_id, step)
    if not text:
        console.print(f"Step '{step}' printed nothing.")
        return
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
