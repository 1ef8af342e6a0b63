"""Batch inference: ``plinth predict MODEL_URI --table T --output T2``."""

from __future__ import annotations

from typing import Annotated

import typer

from plinth.cli.workspace_cmds import HomeOption

UriArgument = Annotated[
    str,
    typer.Argument(
        metavar="MODEL_URI",
        help="Model URI: NAME, NAME:VERSION, NAME@ALIAS, models:/NAME/VERSION ...",
    ),
]


def register(app: typer.Typer) -> None:
    """Add the ``predict`` command to ``app``."""
    app.command("predict")(predict)


def predict(
    uri: UriArgument,
    table: Annotated[str, typer.Option("--table", "-t", help="Lake table to score (the spine).")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Lake table the predictions are written to.")
    ],
    version: Annotated[
        int | None, typer.Option("--version", help="Version of the input table (default: latest).")
    ] = None,
    timestamp: Annotated[
        str | None,
        typer.Option(
            "--timestamp",
            help="Event-time column features are joined as of (default: the training set's).",
        ),
    ] = None,
    chunk_rows: Annotated[
        int, typer.Option("--chunk-rows", min=1, help="Rows read, joined and scored at a time.")
    ] = 100_000,
    executor: Annotated[
        str, typer.Option("--executor", help="Where the model runs: local or ray.")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address", help="Ray cluster (HOST:PORT, ray://..., auto) for --executor ray."
        ),
    ] = None,
    keep: Annotated[
        str | None,
        typer.Option(
            "--keep",
            help="Input columns to copy to the output, comma-separated (default: all "
            "the model does not take).",
        ),
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="overwrite or append the output table.")
    ] = "overwrite",
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Score a lake table with a model version, chunk by chunk, into a new table version.

    Features of the model's feature service are joined point-in-time. The output has one row
    per input row: 'input_row' (its position in the input), the columns the model does not
    take, 'prediction' and 'model_version'; it is committed as one table version.
    """
    from plinth.cli.output import console, print_json
    from plinth.serving.batch import predict_table
    from plinth.workspace import Workspace

    columns = [c.strip() for c in keep.split(",") if c.strip()] if keep is not None else None
    with Workspace(home) as ws:
        result = predict_table(
            ws,
            uri,
            table,
            version=version,
            output=output,
            timestamp=timestamp,
            chunk_rows=chunk_rows,
            executor=executor,
            ray_address=ray_address,
            keep=columns,
            mode=mode,
            progress=not as_json,
        )
    if as_json:
        print_json(result.to_dict())
        return
    data = result.to_dict()
    console.print(
        f"Scored {result.rows:,} rows of {data['input']} with {result.model}:"
        f"{result.model_version} into {data['output']} in {result.seconds:.1f} s "
        f"({result.rows_per_second:,.0f} rows/s, {result.chunks} chunk(s), "
        f"executor {result.executor})."
    )
    if result.feature_service:
        tables = ", ".join(
            f"{name}@{','.join(str(v) for v in versions)}"
            for name, versions in result.feature_tables.items()
        )
        console.print(
            f"Features: service '{result.feature_service}' as of '{result.timestamp}'"
            + (f" (from {tables})." if tables else ".")
        )
