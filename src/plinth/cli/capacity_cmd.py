"""``plinth capacity``: replicas needed for a target rate at a latency SLO, from a load test."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from plinth.cost.capacity import CapacityPlan, LoadTestResult


def register(app: typer.Typer) -> None:
    """Add the capacity command to ``app``."""
    app.command("capacity")(capacity_command)


def capacity_command(
    result: Annotated[
        Path,
        typer.Argument(help="Load-test result JSON (one server, rate steps).", show_default=False),
    ],
    qps: Annotated[float, typer.Option("--qps", help="Target requests per second to serve.")],
    p99_ms: Annotated[float, typer.Option("--p99-ms", help="Latency SLO: p99 in milliseconds.")],
    headroom: Annotated[
        float,
        typer.Option(
            "--headroom", help="Fraction of a replica's sustainable rate to plan for (0-1]."
        ),
    ] = 0.7,
    min_replicas: Annotated[
        int, typer.Option("--min-replicas", help="Never plan fewer replicas than this.")
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Plan the replicas that serve --qps within a p99 latency SLO, from a load-test result."""
    from plinth.cli.output import print_json
    from plinth.cost.capacity import LoadTestResult, capacity

    loaded = LoadTestResult.load(result)
    plan = capacity(
        loaded, target_qps=qps, slo_p99_ms=p99_ms, headroom=headroom, min_replicas=min_replicas
    )
    if as_json:
        print_json({"result": str(result), **plan.to_dict()})
        return
    _print_plan(loaded, plan)


def _print_plan(loaded: LoadTestResult, plan: CapacityPlan) -> None:
    from rich import box
    from rich.table import Table

    from plinth.cli.output import console, styled

    where = f"{loaded.model or loaded.url}: {loaded.workers} worker(s) on {loaded.cpus} CPU(s)"
    console.print(styled(("Load test", "bold"), f" of {where}, started {loaded.started_at}"))
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("rate/s", "achieved/s", "errors", "p50 ms", "p95 ms", "p99 ms", "SLO"):
        table.add_column(column, justify="left" if column == "SLO" else "right")
    for step in loaded.steps:
        problem = step.problem(plan.slo_p99_ms)
        if step is plan.step:
            verdict = ("met, used", "bold green")
        elif problem is None:
            verdict = ("met", "green")
        else:
            verdict = (f"no: {problem}", "red")
        table.add_row(
            f"{step.rate:g}",
            f"{step.achieved:.6g}",
            str(step.errors),
            f"{step.p50_ms:.3g}",
            f"{step.p95_ms:.3g}",
            f"{step.p99_ms:.3g}",
            styled(verdict),
        )
    console.print(table)
    console.print(
        f"One replica sustains {plan.sustainable_qps:.6g} requests/s within p99 ≤ "
        f"{plan.slo_p99_ms:g} ms (step at {plan.step.rate:g}/s, p99 {plan.step.p99_ms:.3g} ms)."
    )
    console.print(
        styled(
            ("Replicas: ", "bold"),
            (str(plan.replicas), "bold"),
            f" for {plan.target_qps:g} requests/s at headroom {plan.headroom:g}: "
            f"{plan.per_replica_qps:.4g}/s each, {plan.utilisation:.0%} of sustainable.",
        )
    )
    if plan.extrapolated:
        console.print(
            "Extrapolated: the target is beyond the highest rate tested; this assumes replicas "
            "scale out linearly while the shared catalog, online store and network keep up."
        )
    for note in plan.notes:
        console.print(styled(("Note: ", "yellow"), note))
