"""Run the inference app under Ray Serve with autoscaling replicas.

Each replica builds the same FastAPI app ``plinth serve`` runs, from the workspace settings of
the process that deployed it; Ray Serve adds and removes replicas between ``min_replicas``
and ``max_replicas`` to keep about ``target_ongoing_requests`` in flight per replica. A
replica takes traffic only after its models are loaded (loading happens in its startup, not
in the background). On a cluster of several machines the workspace must live on shared
engines (PostgreSQL catalog, S3 storage, Redis online store), since replicas run elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from plinth.errors import ConfigError
from plinth.serving.options import ServeOptions

if TYPE_CHECKING:
    from plinth.workspace import Workspace


@dataclass(frozen=True)
class RayServeSpec:
    """How the Ray Serve application is named, scaled and exposed.

    Example:
        >>> RayServeSpec("delay", min_replicas=1, max_replicas=4).autoscaling()["max_replicas"]
        4
    """

    name: str
    min_replicas: int = 1
    max_replicas: int = 2
    target_ongoing_requests: float = 8.0
    num_cpus: float = 1.0
    host: str = "127.0.0.1"
    port: int = 8000
    route_prefix: str = "/"

    def __post_init__(self) -> None:
        if self.min_replicas < 0 or self.max_replicas < max(1, self.min_replicas):
            raise ConfigError(
                f"Replicas min {self.min_replicas} / max {self.max_replicas} do not make sense.",
                hint="Use 0 <= --min-replicas <= --max-replicas, with --max-replicas >= 1.",
            )
        if self.target_ongoing_requests <= 0:
            raise ConfigError(
                "--target-inflight must be positive.", hint="A typical value is 2 to 16."
            )

    def autoscaling(self) -> dict[str, Any]:
        """Ray Serve's ``autoscaling_config`` for this spec."""
        return {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": 5,
            "downscale_delay_s": 30,
        }

    @property
    def url(self) -> str:
        """The HTTP address the application answers on."""
        return f"http://{self.host}:{self.port}{self.route_prefix.rstrip('/')}"


def _builder(settings: dict[str, Any], uris: list[str], options: dict[str, Any]) -> Any:
    def build() -> Any:
        from plinth._core.settings import Settings
        from plinth.serving.server import build_app
        from plinth.workspace import Workspace

        ws = Workspace(settings=Settings(**settings))
        return build_app(ws, uris, ServeOptions.from_dict(options))

    return build


def deploy_ray(
    ws: Workspace,
    uris: list[str],
    spec: RayServeSpec,
    *,
    address: str | None = None,
    options: ServeOptions | None = None,
) -> str:
    """Deploy (or update) the inference app on a Ray cluster; return its URL.

    Example:
        >>> # deploy_ray(ws, ["delay@champion"], RayServeSpec("delay"), address="auto")
    """
    try:
        from ray import serve
    except ImportError as exc:
        raise ConfigError(
            "Deploying to Ray needs Ray Serve, which is not installed.",
            hint="Install the 'ray' extra: pip install 'plinth-ai[ray,serve]'.",
        ) from exc
    from plinth.serving.state import targets_of
    from plinth.training.ray_launcher import connect

    targets_of(uris)
    for uri in uris:
        for part in uri.split(","):
            ws.models.resolve(part.strip())
    settings = getattr(ws.settings, "settings", ws.settings)
    opts = replace(options or ServeOptions(), background_load=False)
    connect(address or "auto", log_to_driver=False)
    serve.start(http_options={"host": spec.host, "port": spec.port})
    deployment = serve.deployment(
        serve.ingress(_builder(settings.model_dump(mode="json"), list(uris), opts.to_dict()))(),
        name=spec.name,
        autoscaling_config=spec.autoscaling(),
        ray_actor_options={"num_cpus": spec.num_cpus},
        graceful_shutdown_timeout_s=30,
    )
    serve.run(deployment.bind(), name=spec.name, route_prefix=spec.route_prefix, blocking=False)
    return spec.url


def undeploy_ray(name: str, *, address: str | None = None) -> None:
    """Delete the Ray Serve application ``name``.

    Example:
        >>> # undeploy_ray("delay")
    """
    from ray import serve

    from plinth.training.ray_launcher import connect

    connect(address or "auto", log_to_driver=False)
    serve.delete(name)
