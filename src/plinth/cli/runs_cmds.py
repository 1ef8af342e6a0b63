"""Run tracking commands: ``plinth runs list|show|compare|plot``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plinth.cli.workspace_cmds import HomeOption

if TYPE_CHECKING:
    from plinth.tracking.service import RunDetail, RunSummary

runs_app = typer.Typer(
    help="Tracked runs: list with filters, show, compare, plot metrics.", no_args_is_help=True
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
#: Metric and parameter columns ``runs list`` shows at most (keys in the filter or sort first).
KEY_COLUMNS = 4
#: Terminal columns ``runs list`` needs besides the id and experiment, and per key column.
BASE_WIDTH, KEY_WIDTH = 54, 16
STATUS_STYLES = {"finished": "green", "running": "cyan", "failed": "red", "killed": "yellow"}


def register(app: typer.Typer) -> None:
    """Add the run tracking commands to ``app``."""
    app.add_typer(runs_app, name="runs")


def _duration(seconds: float | None) -> str:
    """Format a run's duration: ``42.1 s``, ``3 min 5 s``, ``2 h 14 min``, or ``-``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _key_columns(
    runs: list[RunSummary], filter: str | None, sort: str | None, width: int
) -> tuple[list[str], list[str]]:
    """The metric and parameter keys to show as columns, as many as ``width`` leaves room for.

    Keys named in the sort or the filter come first, then the keys most runs have; metrics
    before parameters.
    """
    from plinth.tracking.query import parse_filter, parse_sort

    named = [k.field for k in parse_sort(sort)] + [c.field for c in parse_filter(filter)]
    candidates = [(f.kind, f.key) for f in named if f.kind in ("metric", "param")]
    for kind, attr in (("metric", "metrics"), ("param", "params")):
        counts = Counter(k for run in runs for k in getattr(run, attr))
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        candidates += [(kind, k) for k, _ in ordered[:KEY_COLUMNS]]
    fixed = max(len(r.id) for r in runs) + max(len(r.experiment) for r in runs) + BASE_WIDTH
    room = max((width - fixed) // KEY_WIDTH, 0)
    chosen = list(dict.fromkeys(candidates))[:room]
    return [k for kind, k in chosen if kind == "metric"], [
        k for kind, k in chosen if kind == "param"
    ]


@runs_app.command("list")
def list_runs(
    filter: Annotated[
        str | None,
        typer.Option(
            "--filter",
            "-f",
            help="Conditions joined by 'and', e.g. \"metrics.auc > 0.7 and params.lr = 0.1\".",
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option("--sort", "-s", help="Sort keys, e.g. 'metrics.auc desc' (default: newest)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Most runs to show.")] = 20,
    offset: Annotated[int, typer.Option("--offset", help="Runs to skip first.")] = 0,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs matching a filter, in a chosen order, one page at a time."""
    from rich import box
    from rich.table import Table

    from plinth.cli import remote
    from plinth.cli.output import console, print_json, styled, when
    from plinth.tracking.plot import format_number
    from plinth.tracking.service import Runs
    from plinth.workspace import Workspace

    if remote.enabled():
        runs = remote.list_runs(filter, sort, limit, offset)
    else:
        with Workspace(home) as ws:
            runs = Runs(ws).list(filter=filter, sort=sort, limit=limit, offset=offset)
    if as_json:
        print_json([run.to_dict() for run in runs])
        return
    if not runs:
        console.print("No runs match." if filter or offset else "No runs yet.")
        return
    metric_keys, param_keys = _key_columns(runs, filter, sort, console.width)
    out = Table(box=box.SIMPLE_HEAD)
    for column in ("id", "experiment", "status", "started (UTC)", "duration"):
        out.add_column(column, no_wrap=column != "experiment")
    for key in metric_keys:
        out.add_column(f"metrics.{key}", justify="right")
    for key in param_keys:
        out.add_column(f"params.{key}")
    for run in runs:
        out.add_row(
            run.id,
            run.experiment,
            styled((run.status, STATUS_STYLES.get(run.status, ""))),
            when(run.started_at)[:16],
            _duration(run.duration),
            *(format_number(run.metrics[k]) if k in run.metrics else "-" for k in metric_keys),
            *(run.params.get(k, "-") for k in param_keys),
        )
    console.print(out)
    if not metric_keys and not param_keys and any(r.metrics or r.params for r in runs):
        console.print(
            "Metric and parameter columns need a wider terminal; see them with --json or "
            "'plinth runs show ID'."
        )
    if len(runs) == limit:
        console.print(
            f"Showing {len(runs)} runs from offset {offset}; "
            f"add --offset {offset + limit} for the next page."
        )


def _compact(value: Any, width: int = 100) -> str:
    """One line for a captured value; a long mapping or list is summarized by its size."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) <= width:
        return text
    if isinstance(value, dict | list):
        return f"{len(value)} entries (see --json)"
    return text[: width - 1] + "…"


def _mapping_lines(title: str, data: dict[str, Any] | None) -> list[str]:
    if not data:
        return []
    return [f"{title}:"] + [f"  {key}: {_compact(value)}" for key, value in data.items()]


def _print_detail(run: RunDetail) -> None:
    from rich.table import Table

    from plinth.cli.output import console, human_bytes, print_header, styled
    from plinth.tracking.plot import format_number

    print_header(
        run.id,
        f"experiment {run.experiment}",
        run.status,
        STATUS_STYLES.get(run.status, ""),
        run.started_at,
        run.ended_at,
        _duration(run.duration),
    )
    command = " ".join([run.entry_point or "-", *(str(a) for a in run.arguments or [])])
    console.print(f"launcher {run.launcher}, by {run.created_by}, entry point: {command}")
    if run.parent_id:
        console.print(f"parent: {run.parent_id}")
    if run.children:
        console.print(f"children ({len(run.children)}): {', '.join(run.children)}")
    if run.error:
        console.print(styled(("error: ", "red"), run.error))
    if run.params:
        out = Table(title="params")
        out.add_column("key")
        out.add_column("value")
        for key, value in run.params.items():
            out.add_row(key, value)
        console.print(out)
    if run.metric_summaries:
        out = Table(title="metrics")
        for column in ("key", "last", "last step", "min", "max", "points"):
            out.add_column(column, justify="left" if column == "key" else "right")
        for key, m in run.metric_summaries.items():
            out.add_row(
                key,
                format_number(m.last),
                f"{m.last_step:,}",
                format_number(m.min),
                format_number(m.max),
                f"{m.count:,}",
            )
        console.print(out)
    if run.tags:
        out = Table(title="tags")
        out.add_column("key")
        out.add_column("value")
        for key, value in run.tags.items():
            out.add_row(key, value)
        console.print(out)
    if run.inputs:
        out = Table(title="inputs (upstream lineage)")
        out.add_column("source")
        out.add_column("relation")
        out.add_column("into")
        for edge in run.inputs:
            out.add_row(str(edge.source), edge.relation, str(edge.target))
        console.print(out)
    if run.artifacts:
        out = Table(title="artifacts")
        for column in ("name", "kind", "size", "digest"):
            out.add_column(column, justify="right" if column == "size" else "left")
        for a in run.artifacts:
            out.add_row(a.name, a.kind, human_bytes(a.size), a.digest[:16])
        console.print(out)
    if run.resources:
        out = Table(title="resources")
        columns = ("rank", "host", "wall", "cpu", "peak memory", "gpus", "gpu time", "gpu memory")
        for column in columns:
            out.add_column(column, justify="left" if column == "host" else "right")
        for r in run.resources:
            out.add_row(
                str(r.rank),
                r.host,
                _duration(r.wall_seconds),
                _duration(r.cpu_seconds),
                human_bytes(r.peak_rss_bytes),
                str(r.gpu_count),
                _duration(r.gpu_seconds) if r.gpu_count else "-",
                human_bytes(r.gpu_peak_bytes) if r.gpu_count else "-",
            )
        console.print(out)
    for line in _mapping_lines("requested", run.requested) + _mapping_lines(
        "environment", run.environment
    ):
        console.print(line)


@runs_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="Run id (or an unambiguous start of one).")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one run: parameters, metrics, tags, inputs, artifacts, resources, environment."""
    from plinth.cli import remote
    from plinth.cli.output import print_json
    from plinth.tracking.service import Runs
    from plinth.workspace import Workspace

    if remote.enabled():
        with remote.client() as client:
            run = client.run(run_id)
    else:
        with Workspace(home) as ws:
            run = Runs(ws).get(run_id)
    if as_json:
        print_json(run.to_dict())
        return
    _print_detail(run)


@runs_app.command("compare")
def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids (or unambiguous starts of them).")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put runs side by side: attributes, parameters and last metric values."""
    from rich.table import Table

    from plinth.cli.output import console, print_json, when
    from plinth.cli.remote import open_client
    from plinth.tracking.plot import format_number

    with open_client(home) as client:
        table = client.compare_runs(run_ids)
    if as_json:
        print_json(table.to_dict())
        return

    def cell(section: str, key: str, value: Any) -> str:
        if value is None:
            return "-"
        if key == "started_at":
            return when(value)
        if key == "duration":
            return _duration(value)
        return format_number(value) if section == "metric" else str(value)

    out = Table(caption="Rows whose values differ are in bold.")
    out.add_column("")
    for run_id in table.run_ids:
        out.add_column(run_id, justify="right")
    sections = ("attribute", "param", "metric")
    for section in sections:
        rows = table.section(section)
        prefix = {"attribute": "", "param": "params.", "metric": "metrics."}[section]
        for i, row in enumerate(rows):
            out.add_row(
                prefix + row.key,
                *(cell(section, row.key, v) for v in row.values),
                style="bold" if row.differs else None,
                end_section=i == len(rows) - 1 and section != sections[-1],
            )
    console.print(out)


@runs_app.command("plot")
def plot(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids to chart.")],
    metrics: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="Metric to chart (repeatable; default: all)."),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Chart file: .html (inline SVG) or .png.")
    ] = Path("runs.html"),
    max_points: Annotated[
        int, typer.Option("--max-points", help="Most points per series (downsampled beyond).")
    ] = 1000,
    home: HomeOption = None,
) -> None:
    """Chart metric series of runs to an HTML page (no scripts) or a PNG."""
    from plinth.cli.output import console, human_bytes
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        path = client.plot_runs(run_ids, metrics or None, output, max_points=max_points)
    console.print(f"Wrote {path} ({human_bytes(path.stat().st_size)}).")
