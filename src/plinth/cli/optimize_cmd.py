"""``plinth optimize MODEL_URI --onnx [--quantize dynamic]``: convert a version to ONNX,
check it against the original and register it as the model's next version."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from plinth.cli.workspace_cmds import HomeOption

if TYPE_CHECKING:
    from plinth.serving.optimize import OptimizeResult


class Quantization(StrEnum):
    """Quantization modes of ``--quantize``."""

    dynamic = "dynamic"


def register(app: typer.Typer) -> None:
    """Add the ``optimize`` command to ``app``."""
    app.command("optimize")(optimize)


def optimize(
    model_uri: Annotated[
        str,
        typer.Argument(
            help="The version to optimize: NAME, NAME:VERSION, NAME@ALIAS, models:/NAME/VERSION."
        ),
    ],
    onnx: Annotated[
        bool, typer.Option("--onnx", help="Convert to ONNX (required; the one target so far).")
    ] = False,
    quantize: Annotated[
        Quantization | None,
        typer.Option(
            "--quantize",
            help="dynamic: int8 weights, activations quantized at run time (ONNX Runtime).",
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            metavar="TABLE[@VERSION]",
            help="Lake table to check on (default: the version's training set, else its "
            "input example).",
        ),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(
            "--label", metavar="COLUMN", help="Label column: measure metrics before and after."
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            "--tolerance",
            help="Largest accepted output error (default 1e-4; 0.05 for a quantized model "
            "checked without --label).",
            show_default=False,
        ),
    ] = None,
    metric_tolerance: Annotated[
        float,
        typer.Option(
            "--metric-tolerance",
            help="Largest accepted metric loss of a quantized model with --label (AUC, "
            "accuracy; relative for RMSE, MAE).",
        ),
    ] = 0.01,
    rows: Annotated[
        int, typer.Option("--rows", min=1, help="Validation rows sampled from the table.")
    ] = 2000,
    alias: Annotated[
        str | None, typer.Option("--alias", help="Point this alias at the new version.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Convert, check and measure; register nothing.")
    ] = False,
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Convert a model version to ONNX (optionally int8), check that it answers like the
    original on validation data, and register it as the model's next version."""
    from plinth.cli.output import print_json
    from plinth.errors import ConfigError
    from plinth.serving.optimize import optimize as run_optimize
    from plinth.workspace import Workspace

    if not onnx:
        raise ConfigError(
            "plinth optimize needs a target format.",
            hint=f"Add --onnx: plinth optimize {model_uri} --onnx [--quantize dynamic].",
        )
    if alias and dry_run:
        raise ConfigError("--alias cannot be used with --dry-run.", hint="Drop one of them.")
    with Workspace(home) as ws:
        result = run_optimize(
            ws,
            model_uri,
            quantize=quantize.value if quantize else None,
            data=data,
            label=label,
            tolerance=tolerance,
            metric_tolerance=metric_tolerance,
            sample_rows=rows,
            dry_run=dry_run,
        )
        if alias and result.target:
            name, version = ws.models.resolve(result.target)
            ws.models.set_alias(name, alias, version, reason=f"optimized from {result.source}")
    if as_json:
        print_json({**result.to_dict(), "alias": alias})
    else:
        _print(result, alias)
    if not result.passed:
        raise typer.Exit(1)


def _ms(value: float) -> str:
    return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms"


def _change(before: float, after: float) -> str:
    return f"{after / before - 1:+.0%}" if before else "-"


def _print(result: OptimizeResult, alias: str | None) -> None:
    from rich import box
    from rich.table import Table

    from plinth.cli.output import console, human_bytes, styled

    what = "onnx, int8 " + result.quantize if result.quantize else "onnx"
    console.print(
        styled(
            (result.source, "bold"),
            f" ({result.flavor}) -> ",
            (result.target or "not registered", "bold"),
            f" ({what}, {result.converter})",
        )
    )
    verdict = ("passed", "green") if result.passed else ("FAILED", "bold red")
    console.print(
        styled(
            "check ", verdict, f" on {result.rows:,} rows of the {result.data} "
            f"({result.compared}): {result.reason}"
        )
    )  # fmt: skip
    out = Table(box=box.SIMPLE_HEAD)
    for column in ("", "before", "after", "change"):
        out.add_column(column, justify="left" if not column else "right")
    out.add_row(
        "size",
        human_bytes(result.size_before),
        human_bytes(result.size_after),
        _change(result.size_before, result.size_after),
    )
    out.add_row(
        "predict p50, 1 row",
        _ms(result.row_ms_before),
        _ms(result.row_ms_after),
        _change(result.row_ms_before, result.row_ms_after),
    )
    out.add_row(
        f"predict p50, {result.batch_rows:,} rows",
        _ms(result.batch_ms_before),
        _ms(result.batch_ms_after),
        _change(result.batch_ms_before, result.batch_ms_after),
    )
    for key, before in result.metrics_before.items():
        after = result.metrics_after.get(key, float("nan"))
        out.add_row(key, f"{before:.4f}", f"{after:.4f}", f"{after - before:+.4f}")
    console.print(out)
    console.print(
        f"largest output difference {result.max_abs_diff:.3g}; error {result.error:.3g} "
        f"(tolerance {result.tolerance:g})"
        + (f"; labels agree on {result.label_agreement:.2%}" if result.label_agreement else "")
        + (f"; {result.int8_tensors} int8 weight tensors" if result.quantize else "")
    )
    if result.quantize and not result.int8_tensors:
        console.print(
            "The model has no matrix products to quantize (a tree ensemble or ai.onnx.ml "
            "operator), so its weights stayed in float."
        )
    if result.target:
        console.print(styled("registered ", (result.target, "bold")))
        if alias:
            console.print(f"alias {alias} -> {result.target}")
    else:
        console.print("dry run: nothing was registered.")
