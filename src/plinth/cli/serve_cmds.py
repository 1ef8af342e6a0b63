"""Serving commands: ``plinth serve``, ``plinth deploy ...`` and ``plinth loadtest``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from plinth.cli.workspace_cmds import HomeOption

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class _DeployGroup(TyperGroup):
    """``plinth deploy URI ...`` is short for ``plinth deploy apply URI ...``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["apply", *args]
        return super().parse_args(ctx, args)


deploy_app = typer.Typer(
    cls=_DeployGroup,
    help="Deployments: traffic split (canary, shadow), rollback, Ray Serve and Kubernetes.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the serving commands to ``app``."""
    app.command("serve")(serve)
    app.command("loadtest")(loadtest)
    app.add_typer(deploy_app, name="deploy")


def serve(
    uris: Annotated[
        list[str],
        typer.Argument(
            help="Model URIs to serve, e.g. delay@champion (comma-separated or several)."
        ),
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option("--workers", help="Server processes.")] = 1,
    max_batch_rows: Annotated[
        int, typer.Option("--max-batch-rows", help="Most rows in one micro-batch.")
    ] = 64,
    max_wait_ms: Annotated[
        float, typer.Option("--max-wait-ms", help="Longest a request waits for a batch.")
    ] = 2.0,
    max_queue_rows: Annotated[
        int, typer.Option("--max-queue-rows", help="Rows waiting per version before 503.")
    ] = 4096,
    no_batching: Annotated[
        bool, typer.Option("--no-batching", help="Predict each request alone.")
    ] = False,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", help="Larger request bodies get 413.")
    ] = 1 << 20,
    no_log: Annotated[
        bool, typer.Option("--no-log", help="Do not log predictions to the lake.")
    ] = False,
    log_flush: Annotated[
        float, typer.Option("--log-flush", help="Seconds between prediction log writes.")
    ] = 5.0,
    reload_interval: Annotated[
        float,
        typer.Option("--reload-interval", help="Seconds between alias/deployment checks (0: off)."),
    ] = 1.0,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "warning",
    home: HomeOption = None,
) -> None:
    """Serve models over HTTP: v1 predict, Open Inference Protocol v2, Prometheus /metrics."""
    from plinth.cli.output import console
    from plinth.serving.options import ServeOptions
    from plinth.serving.server import serve as run_server
    from plinth.serving.state import targets_of

    options = ServeOptions(
        max_batch_rows=max_batch_rows,
        max_wait_ms=max_wait_ms,
        max_queue_rows=max_queue_rows,
        batching=not no_batching,
        max_body_bytes=max_body_bytes,
        log_predictions=not no_log,
        log_flush_s=log_flush,
        reload_interval_s=reload_interval,
    )
    from plinth._core.settings import load_settings
    from plinth.governance.access import auth_status

    targets = targets_of(uris)
    base = f"http://{host}:{port}"
    console.print(
        f"Serving {', '.join(t.uri for t in targets)} on {base} with {workers} worker(s). "
        + auth_status(load_settings(home=home).settings)
    )
    console.print(
        f"  predict  POST {base}/v1/models/{targets[0].model}/predict   "
        f"ready  {base}/v2/health/ready   metrics  {base}/metrics   docs  {base}/docs"
    )
    run_server(
        [t.uri for t in targets],
        home=str(home) if home else None,
        host=host,
        port=port,
        workers=workers,
        options=options,
        log_level=log_level,
    )


def loadtest(
    url: Annotated[
        str, typer.Argument(help="Predict URL, e.g. http://127.0.0.1:8080/v1/models/delay/predict.")
    ],
    body: Annotated[
        Path, typer.Option("--body", help="JSON file: one request body, or a list of them.")
    ],
    rates: Annotated[
        str, typer.Option("--rates", help="Comma-separated request rates to offer, per second.")
    ] = "100,300,1000",
    duration: Annotated[float, typer.Option("--duration", help="Seconds per rate.")] = 10.0,
    connections: Annotated[int, typer.Option("--connections", help="Most open connections.")] = 64,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the result JSON here.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Offer fixed request rates to a server and report latency percentiles per rate."""
    import json

    from rich.table import Table

    from plinth.cli.output import console, print_json
    from plinth.errors import ConfigError
    from plinth.serving.loadgen import load_test

    try:
        data = json.loads(body.read_text(encoding="utf-8"))
        offered = [float(r) for r in rates.split(",") if r.strip()]
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"Cannot read the load test's input: {exc}.",
            hint="--body is a JSON file; --rates is like 100,300,1000.",
        ) from exc
    bodies = data if isinstance(data, list) else [data]
    result = load_test(url, bodies, offered, duration_s=duration, connections=connections)
    if output is not None:
        result.save(output)
    if as_json:
        print_json(result.to_dict())
        return
    table = Table(title=f"Load test of {url}")
    for column in ("offered/s", "answered/s", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    for step in result.steps:
        table.add_row(
            f"{step.rate:g}",
            f"{step.achieved:,.1f}",
            str(step.errors),
            f"{step.p50_ms:.2f}",
            f"{step.p95_ms:.2f}",
            f"{step.p99_ms:.2f}",
            f"{step.max_ms:.2f}",
        )
    console.print(table)
    if output is not None:
        console.print(f"Result written to {output}; plan replicas with 'plinth capacity {output}'.")


@deploy_app.command("apply")
def deploy(
    uri: Annotated[str, typer.Argument(help="Model URI taking the traffic, e.g. delay@champion.")],
    canary: Annotated[
        str | None, typer.Option("--canary", help="A second version taking a share of traffic.")
    ] = None,
    canary_weight: Annotated[
        float, typer.Option("--canary-weight", help="The canary's share, in percent.")
    ] = 10.0,
    shadow: Annotated[
        str | None,
        typer.Option("--shadow", help="A version that gets a copy of traffic, answers logged."),
    ] = None,
    target: Annotated[
        str, typer.Option("--target", help="local (record only), ray (Ray Serve) or k8s (YAML).")
    ] = "local",
    reason: Annotated[str | None, typer.Option("--reason", help="Why, kept in history.")] = None,
    min_replicas: Annotated[int, typer.Option("--min-replicas", help="ray/k8s.")] = 1,
    max_replicas: Annotated[int, typer.Option("--max-replicas", help="ray/k8s.")] = 4,
    target_inflight: Annotated[
        float | None,
        typer.Option("--target-inflight", help="ray/k8s: in-flight requests per replica."),
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="ray: cluster address (default auto).")
    ] = None,
    port: Annotated[int, typer.Option("--port", help="ray: HTTP port; k8s: container port.")] = 0,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="k8s: folder for the YAML manifests.")
    ] = Path("k8s"),
    image: Annotated[str, typer.Option("--image", help="k8s: container image.")] = "plinth:latest",
    namespace: Annotated[str, typer.Option("--namespace", help="k8s: namespace.")] = "default",
    cpu: Annotated[str, typer.Option("--cpu", help="k8s: CPU request and limit.")] = "1",
    memory: Annotated[str, typer.Option("--memory", help="k8s: memory request and limit.")] = "2Gi",
    gpus: Annotated[int, typer.Option("--gpus", help="k8s: GPUs per pod.")] = 0,
    workers: Annotated[int, typer.Option("--workers", help="k8s: server processes per pod.")] = 1,
    target_cpu: Annotated[
        int, typer.Option("--target-cpu", help="k8s: HPA CPU utilisation target, percent.")
    ] = 70,
    env_secret: Annotated[
        str, typer.Option("--env-secret", help="k8s: Secret with PLINTH_* URLs ('' for none).")
    ] = "plinth",
    home: HomeOption = None,
) -> None:
    """Record a deployment (versions, weights, shadow) and roll it out to a target."""
    from plinth.cli.output import console
    from plinth.serving.deployments import DeploymentSpec
    from plinth.workspace import Workspace

    spec = DeploymentSpec.of(uri, canary=canary, canary_weight=canary_weight, shadow=shadow)
    with Workspace(home) as ws:
        info = ws.deployments.apply(spec, target=target, reason=reason)
        console.print(f"Deployment {info.name} revision {info.revision}: {spec.describe()}")
        if target == "local":
            console.print("A running 'plinth serve' of this model rolls to it within seconds.")
        elif target == "ray":
            from plinth.serving.ray_serve import RayServeSpec, deploy_ray

            ray_spec = RayServeSpec(
                info.name,
                min_replicas=min_replicas,
                max_replicas=max_replicas,
                target_ongoing_requests=target_inflight or 8.0,
                port=port or 8000,
            )
            url = deploy_ray(ws, [info.name], ray_spec, address=ray_address)
            console.print(f"Ray Serve application '{info.name}' answers on {url}")
        else:
            from plinth.serving.kubernetes import K8sSpec, write_manifests

            k8s = K8sSpec(
                model_uris=(info.name,),
                image=image,
                namespace=namespace,
                min_replicas=min_replicas,
                max_replicas=max_replicas,
                target_cpu_percent=target_cpu,
                target_inflight=target_inflight,
                cpu=cpu,
                memory=memory,
                gpus=gpus,
                workers=workers,
                port=port or 8080,
                env_from_secret=env_secret or None,
            )
            for path in write_manifests(k8s, output):
                console.print(f"  wrote {path}")


@deploy_app.command("list")
def deploy_list(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List deployments with their routes."""
    from rich.table import Table

    from plinth.cli.output import console, print_json, when
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        found = client.deployments()
    if as_json:
        print_json([d.to_dict() for d in found])
        return
    table = Table(title="Deployments")
    for column in ("name", "revision", "target", "routes", "updated", "by"):
        table.add_column(column)
    for d in found:
        table.add_row(
            d.name, str(d.revision), d.target, d.spec.describe(), when(d.updated_at), d.updated_by
        )
    console.print(table)


@deploy_app.command("history")
def deploy_history(
    name: Annotated[str, typer.Argument(help="Deployment name (the model's name).")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every revision of a deployment: what was applied or rolled back, when, by whom, why."""
    from rich.table import Table

    from plinth.cli.output import console, print_json, when
    from plinth.cli.remote import open_client

    with open_client(home) as client:
        revisions = client.deployment_history(name)
    if as_json:
        print_json([r.to_dict() for r in revisions])
        return
    table = Table(title=f"Deployment {name}")
    for column in ("revision", "action", "routes", "target", "at", "by", "reason"):
        table.add_column(column)
    for r in revisions:
        table.add_row(
            str(r.revision),
            r.action,
            r.spec.describe(),
            r.target,
            when(r.at),
            r.by,
            r.reason or "",
        )
    console.print(table)


@deploy_app.command("rollback")
def deploy_rollback(
    name: Annotated[str, typer.Argument(help="Deployment name (the model's name).")],
    to: Annotated[
        int | None, typer.Option("--to", help="Revision to go back to (default: the previous).")
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why, kept in history.")] = None,
    home: HomeOption = None,
) -> None:
    """Re-apply an earlier revision of a deployment; running servers roll to it."""
    from plinth.cli.output import console
    from plinth.workspace import Workspace

    with Workspace(home) as ws:
        info = ws.deployments.rollback(name, to=to, reason=reason)
    console.print(f"Deployment {info.name} revision {info.revision}: {info.spec.describe()}")
