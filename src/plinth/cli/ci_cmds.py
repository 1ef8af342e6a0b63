"""CI commands: ``plinth ci`` runs the project's pipeline and fails on a failed gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from plinth.cli.pipeline_cmds import ExecutorOption, NoCacheOption, ParamOption
from plinth.cli.workspace_cmds import HomeOption

GITHUB_WORKFLOW = Path(".github/workflows/plinth.yml")


def register(app: typer.Typer) -> None:
    """Add the ``ci`` command to ``app``."""
    app.command("ci")(ci)


def ci(
    reference: Annotated[
        str | None,
        typer.Argument(help="The pipeline (default: the 'pipeline' setting, PLINTH_PIPELINE)."),
    ] = None,
    param: ParamOption = None,
    executor: ExecutorOption = "local",
    no_cache: NoCacheOption = False,
    home: HomeOption = None,
) -> None:
    """Run the project's pipeline; exit 1 if a step fails or a promotion gate refuses."""
    from plinth._core.settings import load_settings
    from plinth.cli import pipeline_cmds
    from plinth.cli.output import console, styled
    from plinth.errors import ConfigError, PipelineError
    from plinth.workspace import Workspace

    target = reference or load_settings(home=home).settings.pipeline
    if not target:
        raise ConfigError(
            "No pipeline to run.",
            hint="Name it (plinth ci module:function), or set pipeline = 'module:function' "
            "in plinth.toml (or PLINTH_PIPELINE).",
        )
    result = pipeline_cmds.run(target, param, executor, None, no_cache, home, False)
    with Workspace(home) as ws:
        judged = gate_decisions(ws, result)
    if not judged:
        console.print("No promotion gate ran in this pipeline.")
        return
    failed = [d for d in judged if not d["passed"]]
    for decision in judged:
        verdict = ("passed", "green") if decision["passed"] else ("failed", "red")
        console.print(
            styled(
                (f"Gate {verdict[0]}", verdict[1]),
                f": {decision['model']} version {decision['candidate_version']} against "
                f"{_champion(decision)}.",
            )
        )
        for reason in decision["reasons"]:
            console.print(f"  {reason['status']}: {reason['rule']} ({reason['detail']})")
    if failed:
        first = failed[0]
        raise PipelineError(
            f"The promotion gate refused {first['model']} version "
            f"{first['candidate_version']}; the champion alias did not move.",
            hint="See the failed rules above, or 'plinth models show "
            f"{first['model']}:{first['candidate_version']}'.",
        )


def gate_decisions(ws: Any, result: Any) -> list[dict[str, Any]]:
    """The gate decisions in force for a pipeline run's outputs.

    A step that ran made its decisions in this run; a cached step made them in the run its
    outputs came from (its cache key holds the champion it was judged against, so they still
    stand). A decision belongs to the step that was running in that run when it was made.

    Example:
        >>> # [d["passed"] for d in gate_decisions(ws, result)]
    """
    from sqlalchemy import select

    from plinth.catalog.models import StepRun
    from plinth.registry.gates import decisions_of_run

    found: dict[int, dict[str, Any]] = {}
    for name, step in result.steps.items():
        origin = step.cached_from or result.run_id
        with ws.catalog.session() as session:
            row = session.scalars(
                select(StepRun).where(StepRun.pipeline_run_id == origin, StepRun.step == name)
            ).first()
            if row is None or row.started_at is None or row.ended_at is None:
                continue
            started, ended = row.started_at.isoformat(), row.ended_at.isoformat()
        for decision in decisions_of_run(ws, origin):
            if started <= decision["decided_at"] <= ended:
                found[decision["id"]] = decision
    return [found[i] for i in sorted(found)]


def _champion(decision: dict[str, Any]) -> str:
    version = decision["champion_version"]
    return f"champion version {version}" if version is not None else "no champion yet"


def github_workflow(pipeline: str | None) -> str:
    """The GitHub Actions workflow ``plinth init --ci github`` writes.

    Example:
        >>> "plinth ci" in github_workflow("flows:train")
        True
    """
    target = pipeline or "${{ vars.PLINTH_PIPELINE }}"
    return f"""# Written by 'plinth init --ci github': tests, then the pipeline and its gate.
name: plinth

on:
  push:
  pull_request:

jobs:
  test-train-gate:
    runs-on: ubuntu-latest
    timeout-minutes: 90
    env:
      PLINTH_HOME: ${{{{ github.workspace }}}}/.plinth
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install
        run: |
          python -m pip install --upgrade pip
          python -m pip install -e ".[dev]"
      - name: Tests
        run: python -m pytest
      - name: Pipeline and promotion gate
        run: plinth ci {target}
"""


def write_github_workflow(root: Path, pipeline: str | None, *, force: bool = False) -> Path:
    """Write the workflow under ``root``; an existing file is kept unless ``force``.

    Example:
        >>> # write_github_workflow(Path("."), "flows:train")
    """
    from plinth._core.files import atomic_writer
    from plinth.errors import ConflictError

    path = root / GITHUB_WORKFLOW
    if path.exists() and not force:
        raise ConflictError(
            f"The workflow '{path}' already exists.",
            hint="Pass --force to replace it.",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path) as handle:
        handle.write(github_workflow(pipeline).encode())
    return path
