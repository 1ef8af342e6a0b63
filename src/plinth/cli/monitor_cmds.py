"""Monitoring commands: ``plinth monitor drift|quality|performance|run|report|alerts|alert``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from plinth.cli.workspace_cmds import HomeOption

monitor_app = typer.Typer(
    help="Monitoring of served models: drift, traffic quality, performance, alerts, reports.",
    no_args_is_help=True,
)
RulesOption = Annotated[
    Path | None,
    typer.Option(
        "--rules",
        help="Rules file with models: and rules: sections (default: ./monitoring.yaml if present).",
    ),
]
DEFAULT_RULES = Path("monitoring.yaml")


def register(app: typer.Typer) -> None:
    """Add the monitoring commands to ``app``."""
    app.add_typer(monitor_app, name="monitor")


@monitor_app.command("drift")
def drift(
    uri: Annotated[str, typer.Argument(help="Model URI, e.g. delay@champion.")],
    window: Annotated[
        str, typer.Option("--window", help="30m, 1h, 1d, 30d ... or N rows: 10000rows.")
    ] = "1d",
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="TABLE[@VERSION] (default: the training set)."),
    ] = None,
    reference_where: Annotated[
        str | None,
        typer.Option("--reference-where", help="SQL filter on the reference's rows."),
    ] = None,
    psi: Annotated[float, typer.Option("--psi", help="PSI that counts as drift.")] = 0.2,
    wasserstein: Annotated[
        float, typer.Option("--wasserstein", help="Wasserstein / reference std that counts.")
    ] = 0.1,
    js: Annotated[float, typer.Option("--js", help="Jensen-Shannon distance that counts.")] = 0.1,
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Drift of a model's prediction log, window by window, against its reference."""
    from rich.table import Table

    from plinth.cli import remote
    from plinth.cli.output import console, print_json
    from plinth.monitoring.drift import Thresholds
    from plinth.monitoring.service import log_drift
    from plinth.workspace import Workspace

    limits = Thresholds(psi=psi, wasserstein=wasserstein, js=js)
    if remote.enabled():
        if reference is not None or reference_where is not None or limits != Thresholds():
            from plinth.errors import ConfigError

            raise ConfigError(
                "Through the server, 'plinth monitor drift' uses the training set as the "
                "reference and the default thresholds.",
                hint="Leave out --reference, --reference-where, --psi, --wasserstein and --js, "
                "or unset PLINTH_URL to run it on a local catalog.",
            )
        with remote.client() as client:
            windows = client.drift(uri, window)
    else:
        with Workspace(home) as ws:
            windows = log_drift(
                ws,
                uri,
                window=window,
                reference=reference,
                reference_where=reference_where,
                thresholds=limits,
            )
    if as_json:
        print_json([w.to_dict() for w in windows])
        return
    table = Table(title=f"Drift of {uri}'s prediction log ({window} windows)")
    for column in ("window", "rows", "drifted share", "drifted columns (PSI)"):
        table.add_column(column)
    for w in windows:
        start = w.start.strftime("%Y-%m-%d %H:%M") if w.start else "-"
        flagged = ", ".join(f"{c.column} ({c.psi:.2f})" for c in w.report.columns if c.drifted)
        table.add_row(start, f"{w.rows:,}", f"{w.report.share_drifted:.0%}", flagged or "-")
    console.print(table)


def _rules(path: Path | None, required: bool) -> Any:
    from plinth.errors import ConfigError
    from plinth.monitoring.rules import RuleSet, load_rules

    if path is None and DEFAULT_RULES.exists():
        path = DEFAULT_RULES
    if path is None:
        if required:
            raise ConfigError(
                "No rules file: pass --rules FILE or create monitoring.yaml here.",
                hint="See docs/monitoring.md for the rules format.",
            )
        return RuleSet()
    return load_rules(path)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@monitor_app.command("quality")
def quality(
    uri: Annotated[str, typer.Argument(help="Model URI, e.g. delay@champion.")],
    window: Annotated[str, typer.Option("--window", help="1h, 1d, 30d ...")] = "1d",
    rules: RulesOption = None,
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Data quality of the latest window of traffic: nulls, out-of-range, unseen categories."""
    from rich.table import Table

    from plinth.cli.output import console, print_json
    from plinth.monitoring.facts import observe
    from plinth.workspace import Workspace

    with Workspace(home) as ws:
        observation = observe(ws, _rules(rules, False).target(uri), window=window)
    latest = observation.latest
    report = latest.quality_report(observation.profile) if latest is not None else {}
    if as_json:
        print_json({"start": latest.start.isoformat() if latest else None, "columns": report})
        return
    if latest is None:
        console.print(f"No traffic for {uri} yet.")
        return
    table = Table(
        title=f"Traffic quality of {uri}, window from {_when(latest.start)} ({latest.rows:,} rows)"
    )
    for column in (
        "column",
        "nulls",
        "nulls (reference)",
        "outside reference range",
        "breaks contract",
        "unseen categories",
    ):
        table.add_column(column)
    for name, q in report.items():
        unseen = ", ".join(f"{k} ({v})" for k, v in list(q["unseen"].items())[:5])
        table.add_row(
            name,
            f"{q['null_share']:.1%}",
            f"{q['null_share_reference']:.1%}",
            f"{q['outside_reference_share']:.1%}",
            f"{q['out_of_range_share']:.1%}",
            unseen or "-",
        )
    console.print(table)


@monitor_app.command("performance")
def performance(
    uri: Annotated[str, typer.Argument(help="Model URI, e.g. delay@champion.")],
    outcomes: Annotated[str, typer.Option("--outcomes", help="Outcomes table TABLE[@VERSION].")],
    label: Annotated[str, typer.Option("--label", help="The outcomes' label column.")],
    on: Annotated[
        str, typer.Option("--on", help="Join keys, comma-separated (default request_id).")
    ] = "request_id",
    time_column: Annotated[
        str | None,
        typer.Option("--time-column", help="Join by keys and time: the outcomes' time column."),
    ] = None,
    tolerance: Annotated[
        str | None, typer.Option("--tolerance", help="Latest outcome time after the prediction.")
    ] = None,
    window: Annotated[str, typer.Option("--window", help="1h, 1d, 30d ... or 10000rows.")] = "1d",
    by: Annotated[
        str | None, typer.Option("--by", help="Slice columns, comma-separated (e.g. origin).")
    ] = None,
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Live performance per window, once outcomes (labels) have arrived in a lake table."""
    from rich.table import Table

    from plinth.cli.output import console, print_json
    from plinth.monitoring.performance import log_performance
    from plinth.quality.contracts import parse_duration
    from plinth.workspace import Workspace

    slices = [c.strip() for c in by.split(",") if c.strip()] if by else []
    with Workspace(home) as ws:
        windows = log_performance(
            ws,
            uri,
            outcomes,
            label=label,
            on=[c.strip() for c in on.split(",") if c.strip()],
            time_column=time_column,
            tolerance=parse_duration(tolerance) if tolerance else None,
            window=window,
            slice_by=slices,
        )
    if as_json:
        print_json([w.to_dict() for w in windows])
        return
    names = sorted({k for w in windows for k in w.metrics if k != "rows"})
    table = Table(title=f"Performance of {uri} ({window} windows, outcomes from {outcomes})")
    for column in ("window", "rows", "labelled", *names):
        table.add_column(column)
    for w in windows:
        values = [w.metrics.get(n) for n in names]
        table.add_row(
            _when(w.start),
            f"{w.rows:,}",
            f"{w.labelled:,}",
            *[f"{v:.3f}" if isinstance(v, float) else "-" for v in values],
        )
    console.print(table)
    for column in slices:
        latest = next((w for w in reversed(windows) if w.slices.get(column)), None)
        if latest is None:
            continue
        by_value = Table(title=f"Latest window by {column}")
        for head in (column, "rows", *names):
            by_value.add_column(head)
        for value, metrics in sorted(latest.slices[column].items()):
            cells = [metrics.get(n) for n in names]
            by_value.add_row(
                value,
                f"{int(metrics.get('rows') or 0):,}",
                *[f"{v:.3f}" if isinstance(v, float) else "-" for v in cells],
            )
        console.print(by_value)


@monitor_app.command("run")
def run(
    rules: RulesOption = None,
    every: Annotated[
        str | None, typer.Option("--every", help="Keep going: evaluate every 30s, 5m, 1h ...")
    ] = None,
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Fold new traffic into the history and evaluate the alert rules (once, or --every)."""
    import signal
    import threading

    from plinth.cli.output import console, print_json
    from plinth.monitoring.runner import run_every, run_once
    from plinth.quality.contracts import parse_duration
    from plinth.workspace import Workspace

    ruleset = _rules(rules, True)

    def show(result: Any) -> None:
        if as_json:
            print_json(result.to_dict())
            return
        _print_pass(console, result)

    with Workspace(home) as ws:
        if every is None:
            show(run_once(ws, ruleset))
            return
        try:
            seconds = parse_duration(every).total_seconds()
        except ValueError as exc:
            from plinth.errors import ConfigError

            raise ConfigError(str(exc), hint="Use e.g. --every 30s, 5m or 1h.") from None
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        if not as_json:
            console.print(f"Monitoring every {every}; Ctrl-C stops after the current pass.")
        run_every(ws, ruleset, seconds, stop=stop, on_pass=show)


def _print_pass(console: Any, result: Any) -> None:
    from plinth.monitoring.facts import target_facts_summary

    for (uri, window), obs in result.observations.items():
        latest = obs.latest
        where = f"latest {window} window from {_when(latest.start)}" if latest else "no traffic"
        console.print(
            f"{uri}: {obs.rows_added:,} new rows folded in; {where}: "
            f"{target_facts_summary(obs.facts) or '-'}"
        )
    for uri, why in result.skipped.items():
        console.print(f"{uri}: skipped ({why})")
    for r in result.results:
        outcome = r.outcome
        line = f"  rule {r.rule} on {r.model}: {outcome.transition}"
        if outcome.alert_id is not None:
            line += f" (alert {outcome.alert_id})"
        for action in outcome.actions:
            extra = f" pipeline run {action.pipeline_run_id}" if action.pipeline_run_id else ""
            line += f"; {action.action} {action.status}{extra}"
        console.print(line)


@monitor_app.command("report")
def report(
    uri: Annotated[str, typer.Argument(help="Model URI, e.g. delay@champion.")],
    html: Annotated[Path, typer.Option("--html", help="Where to write the HTML report.")],
    window: Annotated[
        str | None, typer.Option("--window", help="1h, 1d, 30d ... (default: the model's).")
    ] = None,
    rules: RulesOption = None,
    home: HomeOption = None,
) -> None:
    """Write an HTML report: drift per feature, performance, quality, latency, alerts."""
    from plinth.cli.output import console, human_bytes
    from plinth.monitoring.report import write_report
    from plinth.monitoring.summary import monitoring_summary
    from plinth.workspace import Workspace

    with Workspace(home) as ws:
        summary = monitoring_summary(ws, _rules(rules, False).target(uri), window=window)
    path = write_report(summary, html)
    console.print(
        f"Wrote {path} ({human_bytes(path.stat().st_size)}): {len(summary['drift'])} windows, "
        f"{len(summary['alerts'])} alerts."
    )


@monitor_app.command("alerts")
def alerts(
    state: Annotated[
        str | None, typer.Option("--state", help="firing, resolved or pending.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Only this model.")] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Only this rule.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 50,
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List alerts, newest first."""
    from rich.table import Table

    from plinth.cli import remote
    from plinth.cli.output import console, print_json
    from plinth.monitoring.alerts import AlertManager
    from plinth.workspace import Workspace

    if remote.enabled():
        with remote.client() as client:
            found = [a for a in client.alerts(state, model) if rule is None or a.rule == rule]
            found = found[: max(limit, 0)]
    else:
        with Workspace(home) as ws:
            found = AlertManager(ws).alerts(state=state, model=model, rule=rule, limit=limit)
    if as_json:
        print_json([a.to_dict() for a in found])
        return
    table = Table(title="Alerts")
    for column in ("id", "rule", "model", "state", "severity", "value", "fired", "resolved"):
        table.add_column(column)
    for a in found:
        table.add_row(
            str(a.id),
            a.rule,
            a.model,
            a.state,
            a.severity,
            f"{a.value:.4g}" if a.value is not None else "-",
            _when(a.fired_at),
            _when(a.resolved_at),
        )
    console.print(table)
    if found:
        console.print("Details and actions: plinth monitor alert ID")


@monitor_app.command("alert")
def alert(
    alert_id: Annotated[int, typer.Argument(help="Alert id (see 'plinth monitor alerts').")],
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one alert and its history: fired, actions (with retrain runs), resolved."""
    from rich.table import Table

    from plinth.cli.output import console, print_json
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        detail = client.alert(alert_id)
    found, events = detail.alert, detail.events
    if as_json:
        print_json({**found.to_dict(), "events": [e.to_dict() for e in events]})
        return
    console.print(
        f"Alert {found.id}: {found.rule} on {found.model}, {found.state} ({found.severity})"
    )
    console.print(f"  {found.message}")
    table = Table(title="History")
    for column in ("at", "event", "action", "status", "pipeline run"):
        table.add_column(column)
    for e in events:
        table.add_row(
            _when(e.at), e.kind, e.action or "-", e.status or "-", e.pipeline_run_id or "-"
        )
    console.print(table)
