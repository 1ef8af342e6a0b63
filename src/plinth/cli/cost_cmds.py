"""Cost commands: ``plinth cost [--by run|model|pipeline|deployment] [--since]`` and
``plinth cost waste|prices|budget``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plinth.cli.workspace_cmds import HomeOption

if TYPE_CHECKING:
    from plinth.cost.accounting import CostReport

cost_app = typer.Typer(
    help="What runs, models, pipelines, deployments and storage cost (the table, grouped "
    "--by); waste, prices and budgets as commands.",
    invoke_without_command=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="From a duration ago (30d, 12h, 2w) or a date (2026-11-01)."),
]


def register(app: typer.Typer) -> None:
    """Add the cost commands to ``app``."""
    app.add_typer(cost_app, name="cost")


def usd(value: float | None) -> str:
    """Format dollars: cents from $1 up, two significant digits below.

    Example:
        >>> usd(1234.5), usd(0.0123), usd(0.000254), usd(0)
        ('$1,234.50', '$0.012', '$0.00025', '$0')
    """
    if value is None:
        return "-"
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    digits = max(2, 1 - math.floor(math.log10(abs(value))))
    return f"${value:.{digits}f}"


def _seconds(value: float) -> str:
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    return f"{value / 60:.1f} min" if value >= 60 else f"{value:.1f} s"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


@cost_app.callback(invoke_without_command=True)
def cost(
    ctx: typer.Context,
    by: Annotated[
        str, typer.Option("--by", help="Group by run, model, pipeline or deployment.")
    ] = "model",
    since: SinceOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """What runs, models, pipelines or deployments cost (--by), with totals and per 1,000."""
    if ctx.invoked_subcommand is not None:
        return
    from plinth.cli.output import print_json
    from plinth.cli.remote import open_client
    from plinth.cost.accounting import BY, parse_since
    from plinth.errors import ConfigError

    if by not in BY:
        raise ConfigError(f"Cannot group costs by '{by}'.", hint=f"Use --by {' | '.join(BY)}.")
    start = parse_since(since)
    with open_client(home) as client:  # the server's, priced with its prices, in remote mode
        report = client.cost(by, start)
    if as_json:
        print_json(report.to_dict())
        return
    _print_report(report)


def _table(title: str, columns: list[str], left: int = 1) -> Any:
    """A borderless table that fits 80 columns: the first ``left`` columns left-aligned."""
    from rich.table import Table

    table = Table(title=title, box=None, padding=(0, 1), pad_edge=False, show_footer=True)
    for index, name in enumerate(columns):
        table.add_column(
            name,
            justify="left" if index < left else "right",
            no_wrap=index == 0,
            header_style="bold",
            footer_style="bold",
        )
    return table


_COLUMNS = {
    "run": (["run", "experiment", "procs", "wall", "cost", "of"], 2, 4),
    "model": (["model", "runs", "training", "serving", "total", "predictions", "per 1,000"], 1, 4),
    "pipeline": (["pipeline run", "pipeline", "status", "steps", "step time", "cost"], 3, 5),
    "deployment": (
        ["deployment", "target", "replicas", "uptime", "predictions", "cost", "per 1,000"],
        2,
        5,
    ),
}


def _row(by: str, item: Any) -> list[str]:
    if by == "run":
        inside = f"step {item.pipeline_run.split('/')[-1]}" if item.pipeline_run else "-"
        return [
            item.run_id, item.experiment, str(len(item.ranks)), _seconds(item.wall_seconds),
            usd(item.usd), item.model or inside,
        ]  # fmt: skip
    if by == "model":
        return [
            item.model or "(none)", str(len(item.runs)), usd(item.training_usd),
            usd(item.serving_usd), usd(item.usd), f"{item.predictions:,}", usd(item.per_1000),
        ]  # fmt: skip
    if by == "pipeline":
        ran = [s for s in item.steps if s.seconds > 0]
        return [
            item.pipeline_run_id, item.pipeline, item.status, f"{len(ran)}/{len(item.steps)} ran",
            _seconds(sum(s.seconds for s in item.steps)), usd(item.usd),
        ]  # fmt: skip
    size = f"{item.replicas} x {item.replica.cpu:g}c/{item.replica.memory / 2**30:g}G"
    if item.replica.gpu:
        size += f"/{item.replica.gpu:g}gpu"
    name = item.name if item.name == item.model else f"{item.name} ({item.model})"
    return [
        name, item.target if item.recorded else "none", size, _seconds(item.uptime_seconds) + "*",
        f"{item.predictions:,}", usd(item.usd), usd(item.per_1000),
    ]  # fmt: skip


def _print_report(report: CostReport) -> None:
    from plinth.cli.output import console, human_bytes, styled, when

    window = report.window
    span = f"since {when(window.start)} UTC" if window.start else "all time"
    columns, left, money = _COLUMNS[report.by]
    table = _table(f"Cost by {report.by}, {span} (until {when(window.end)} UTC)", columns, left)
    table.columns[0].footer = "total"
    table.columns[money].footer = usd(report.total_usd)
    for item in report.items:
        table.add_row(*_row(report.by, item))
    if report.items:
        console.print(table)
    else:
        console.print(f"Nothing to cost by {report.by} {span}.")
    if report.by == "model" and report.items:
        console.print("per 1,000: serving cost per 1,000 predictions logged.")
    if report.by in ("model", "deployment") and report.items:
        for item in report.items:
            basis = getattr(item, "uptime_basis", None)
            if basis is not None:
                console.print(f"* {item.name}: uptime estimated from the {basis}.")
        console.print("Serving: replicas x uptime x a replica's price; uptime is estimated.")
    spend, storage = report.spend, report.storage
    console.print(
        styled(("Spend (each part counted once): ", "bold"), (usd(spend.total_usd), "bold"))
    )
    console.print(
        f"  runs {usd(spend.runs_usd)} · pipelines {usd(spend.pipelines_usd)} · serving "
        f"{usd(spend.serving_usd)} · storage {usd(spend.storage_usd)}"
    )
    console.print(
        f"Storage: {human_bytes(storage.lake_bytes)} lake + {human_bytes(storage.artifact_bytes)} "
        f"artifacts = {usd(storage.usd_per_month)} a month."
    )
    overridden = report.price_overrides
    prices = "overrides: " + ", ".join(overridden) if overridden else "defaults"
    console.print(f"Prices: AWS us-east-1 on-demand list ({prices}); see 'plinth cost prices'.")


@cost_app.command("waste")
def waste(
    since: SinceOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Utilization of requested CPU, memory and GPU; idle and over-provisioned items."""

    from plinth.cli.output import console, print_json, styled
    from plinth.cli.remote import open_client
    from plinth.cost.accounting import parse_since
    from plinth.cost.waste import IDLE, OVER_PROVISIONED

    start = parse_since(since)
    with open_client(home) as client:  # the server's, priced with its prices, in remote mode
        report = client.waste(start)
    if as_json:
        print_json(report.to_dict())
        return
    if not report.items:
        console.print(
            "Nothing to judge: no run requested resources (plinth train --cpus/--gpus/--memory) "
            "and no deployment has an uptime."
        )
        return
    shown = [
        (name, attr)
        for name, attr in (("CPU", "cpu"), ("memory", "memory"), ("GPU", "gpu"))
        if any(getattr(u, attr) is not None for u in report.items)
    ]
    columns = ["run or deployment", *(n for n, _ in shown), "overall", "wasted", "verdict"]
    table = _table("Utilization of what was requested", columns)
    table.show_footer = False
    table.columns[-1].justify = "left"
    styles = {"idle": "red", "over-provisioned": "yellow", "ok": "green"}
    for u in report.items:
        table.add_row(
            f"{u.kind} {u.name}",
            *(_share(getattr(u, attr)) for _, attr in shown),
            _share(u.utilization),
            usd(u.wasted_usd),
            styled((u.verdict, styles[u.verdict])),
        )
    console.print(table)
    idle = sum(1 for u in report.items if u.verdict == "idle")
    over = sum(1 for u in report.items if u.verdict == "over-provisioned")
    console.print(
        styled(
            ("Wasted: ", "bold"),
            f"{usd(report.wasted_usd)} of {usd(report.requested_usd)} requested; {idle} idle "
            f"(<{IDLE:.0%}), {over} over-provisioned (<{OVER_PROVISIONED:.0%}).",
        )
    )


@cost_app.command("prices")
def prices(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """The effective price table: defaults with plinth.toml / PLINTH_PRICES overrides, sources."""

    from plinth.cli.output import console, print_json
    from plinth.cli.remote import open_client
    from plinth.cost.prices import PRICES_SOURCE

    with open_client(home) as client:  # the server's own table in remote mode
        table_ = client.prices()
    if as_json:
        print_json({"as_of": table_.as_of, "prices": table_.to_dict()})
        return
    table = _table(f"Prices in USD ({PRICES_SOURCE}, {table_.as_of})", ["key", "USD"], 1)
    table.show_footer = False
    table.add_column("per")
    table.add_column("source", overflow="fold")
    for price in table_.values():
        key = price.key + (" *" if price.overridden else "")
        table.add_row(key, f"{price.usd:g}", price.unit, price.source)
    console.print(table)
    if any(p.overridden for p in table_.values()):
        console.print("* overridden in the settings (plinth.toml [prices] or PLINTH_PRICES).")


@cost_app.command("budget")
def budget(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Month-to-date spend against each project's budget; fire or resolve the 80%/100% alerts."""

    from plinth.cli.output import console, print_json
    from plinth.cli.remote import open_client

    with open_client(home) as client:  # the server's budgets and alerts in remote mode
        statuses = client.evaluate_budgets()
        project = None if statuses else client.whoami().project  # named when none is set
    if as_json:
        print_json([s.to_dict() for s in statuses])
        return
    if not statuses:
        console.print(
            "No budgets are set. Add a monthly amount in USD per project to plinth.toml, e.g. "
            f"[budgets] then {project} = 500 (or PLINTH_BUDGETS='{{\"{project}\": 500}}')."
        )
        return
    columns = ["project", "month", "budget", "spent", "share", "alerts"]
    table = _table("Budgets this month", columns, left=2)
    table.show_footer = False
    table.columns[-1].justify = "left"
    for s in statuses:
        changes = ", ".join(
            f"{rule.rsplit('-', 1)[-1]}% {what}" for rule, what in s.transitions.items()
        )
        if s.spent_usd is None:
            changes = "not measured here"
        table.add_row(
            s.project, s.month, usd(s.budget_usd), usd(s.spent_usd), _share(s.share),
            changes or "-",
        )  # fmt: skip
    console.print(table)
    console.print("Alerts fire at 80% and 100%: plinth monitor alerts --model project:PROJECT")
