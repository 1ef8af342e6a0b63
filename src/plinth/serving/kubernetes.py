"""Kubernetes manifests for ``plinth serve``: Deployment, Service, autoscaler, disruption budget.

:func:`k8s_manifests` turns a :class:`K8sSpec` into plain dicts, :func:`validate_manifest` checks
one against the schemas of the ``kubernetes`` Python client (the ``k8s`` extra), and
:func:`write_manifests` writes one YAML file per object, ``<name>-<kind>.yaml``, ready for
``kubectl apply -f FOLDER``.

What the objects do:

- **Deployment** ``<name>``: the container runs
  ``plinth serve URI[,URI...] --host 0.0.0.0 --port 8080 --workers N``. The image must contain
  Plinth installed with the ``serve`` extra (plus the extras the models' flavors need, and
  ``postgres``, ``s3``, ``redis`` for the cluster backends). The catalog, storage and online
  store URLs (``PLINTH_DATABASE_URL``, ``PLINTH_STORAGE_URL``, ``PLINTH_ONLINE_URL``, and
  credentials such as ``AWS_ACCESS_KEY_ID``) come from a Secret (default ``plinth``) and/or a
  ConfigMap via ``envFrom``; ``env`` adds or overrides single variables. ``PLINTH_HOME`` is an
  ``emptyDir`` scratch folder. CPU and memory requests equal their limits (Guaranteed QoS), so
  a pod gets the cores a load test measured; ``gpus`` adds ``nvidia.com/gpu`` and a toleration.
  The startup probe gives model loading ``startup_timeout_s``; then readiness follows
  ``/v2/health/ready`` (every model and feature store loaded) and liveness
  ``/v2/health/live``. On shutdown a ``preStop`` sleep lets endpoints drop the pod before
  SIGTERM, and the grace period leaves time to finish requests and flush the prediction log.
  Rolling updates use ``maxUnavailable: 0``, so a rollout never lowers serving capacity.
  Prometheus scrape annotations point at ``/metrics``.
- **Service** ``<name>``: ClusterIP, port 80 to the container's ``http`` port.
- **HorizontalPodAutoscaler** (``autoscaling/v2``), when ``max_replicas > min_replicas``: CPU
  utilization target, plus, with ``target_inflight``, a Pods metric on the average number of
  in-flight requests per pod. That metric needs a Prometheus adapter (e.g.
  ``prometheus-adapter``) exposing ``plinth_inflight_requests`` through the custom metrics API.
  While the autoscaler exists the Deployment leaves ``replicas`` unset, so ``kubectl apply``
  does not reset a scaled deployment; with ``min_replicas == max_replicas`` there is no
  autoscaler and the replica count is fixed.
- **PodDisruptionBudget** (``policy/v1``), when ``min_replicas > 1``: ``minAvailable: 1``, so
  node drains never take every replica at once.

Example:
    >>> spec = K8sSpec(model_uris=["delay@champion"], max_replicas=6, target_inflight=8)
    >>> [(d["kind"], d["metadata"]["name"]) for d in k8s_manifests(spec)][:2]
    [('Deployment', 'plinth-delay'), ('Service', 'plinth-delay')]
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plinth.errors import ConfigError

__all__ = [
    "K8sSpec",
    "deployment_name",
    "k8s_manifests",
    "validate_manifest",
    "write_manifests",
]

#: The client model class and apiVersion of every kind :func:`k8s_manifests` produces.
KINDS: dict[str, tuple[str, str]] = {
    "Deployment": ("apps/v1", "V1Deployment"),
    "Service": ("v1", "V1Service"),
    "HorizontalPodAutoscaler": ("autoscaling/v2", "V2HorizontalPodAutoscaler"),
    "PodDisruptionBudget": ("policy/v1", "V1PodDisruptionBudget"),
}
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
METRICS_PATH = "/metrics"
HOME_MOUNT = "/var/lib/plinth"
#: Seconds the preStop hook waits so endpoints stop routing to the pod before SIGTERM.
DRAIN_SECONDS = 5
#: Seconds from the start of termination to SIGKILL: drain, finish requests, flush logs.
GRACE_SECONDS = 30

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CPU = re.compile(r"^(\d+(\.\d{1,3})?|\.\d{1,3}|\d+m)$")
_MEMORY = re.compile(r"^(\d+(\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_MEMORY_UNITS = {
    **{u: 1024**i for i, u in enumerate(("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{u: 1000**i for i, u in enumerate(("k", "M", "G", "T", "P", "E"), start=1)},
}
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_IMAGE = re.compile(r"^[^\s]+$")
_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


@dataclass(frozen=True)
class K8sSpec:
    """What to deploy and how: models, image, replicas, resources, environment, labels.

    ``name`` defaults to one derived from the model names (``plinth-delay``). ``cpu`` and
    ``memory`` are Kubernetes quantities per pod (``"500m"``, ``"2"``; ``"512Mi"``, ``"2Gi"``),
    used as requests and limits. ``workers`` is the number of uvicorn processes per pod; keep it
    at about the pod's cores. ``env_from_secret`` / ``env_from_config_map`` name objects whose
    keys become environment variables (the ``PLINTH_*_URL`` settings); ``env`` sets single
    variables on top.

    Example:
        >>> K8sSpec(model_uris=["models:/delay/3"]).name
        'plinth-delay'
    """

    name: str = ""
    model_uris: Sequence[str] = ()
    image: str = "plinth:latest"
    min_replicas: int = 1
    max_replicas: int = 4
    target_cpu_percent: int = 70
    target_inflight: float | None = None
    inflight_metric: str = "plinth_inflight_requests"
    cpu: str = "1"
    memory: str = "2Gi"
    gpus: int = 0
    workers: int = 1
    port: int = 8080
    namespace: str = "default"
    env: Mapping[str, str] = field(default_factory=dict)
    env_from_secret: str | None = "plinth"
    env_from_config_map: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str | None = None
    startup_timeout_s: int = 300

    def __post_init__(self) -> None:
        uris = [self.model_uris] if isinstance(self.model_uris, str) else list(self.model_uris)
        object.__setattr__(self, "model_uris", tuple(uris))
        object.__setattr__(self, "env", dict(self.env))
        object.__setattr__(self, "labels", dict(self.labels))
        _check_uris(self.model_uris)
        if not self.name:
            object.__setattr__(self, "name", deployment_name(self.model_uris))
        _check_spec(self)


def deployment_name(model_uris: Sequence[str]) -> str:
    """A DNS-safe object name for the models: ``plinth-`` and their names, at most 63 chars.

    Example:
        >>> deployment_name(["delay@champion", "models:/Taxi_Fare/2"])
        'plinth-delay-taxi-fare'
    """
    from plinth.registry.uri import parse_uri

    if not model_uris:
        raise _no_models()
    parts = []
    for uri in model_uris:
        name = parse_uri(uri).name.lower()
        parts.append(re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", name)).strip("-"))
    return f"plinth-{'-'.join(p for p in parts if p)}"[:63].rstrip("-")


def _no_models() -> ConfigError:
    return ConfigError(
        "No model URIs were given to deploy.",
        hint="Name at least one model, as in 'delay@champion' or 'models:/delay/3'.",
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(spec: K8sSpec, attr: str, low: int, high: int | None = None) -> None:
    value = getattr(spec, attr)
    if not _is_int(value) or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        example = getattr(K8sSpec, attr)
        raise ConfigError(
            f"{attr} must be a whole number {bound}, not {value!r}.",
            hint=f"Give a value like {example if example >= low else low}.",
        )


def _check_text(
    value: Any, pattern: re.Pattern[str], what: str, hint: str, most: int = 253
) -> None:
    if not isinstance(value, str) or len(value) > most or not pattern.match(value):
        raise ConfigError(f"{what} {value!r} is not valid.", hint=hint)


def _memory_bytes(text: str) -> float:
    match = _MEMORY.match(text)
    assert match is not None
    return float(match.group(1)) * _MEMORY_UNITS[match.group(3) or ""]


def _check_labels(labels: Mapping[str, Any]) -> None:
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/") if isinstance(key, str) else ("", "", "")
        if (
            not _LABEL_NAME.match(name)
            or (prefix and (len(prefix) > 253 or not _LABEL_PREFIX.match(prefix)))
            or not isinstance(value, str)
            or not _LABEL_VALUE.match(value)
        ):
            raise ConfigError(
                f"The label {key!r}: {value!r} is not a valid Kubernetes label.",
                hint="Keys are [prefix/]name and values at most 63 characters of letters, "
                "digits, '-', '_' and '.', starting and ending with a letter or digit.",
            )
        if key in _SELECTOR_KEYS:
            raise ConfigError(
                f"The label {key!r} is set by Plinth to select the deployment's pods.",
                hint="Choose another label key.",
            )


def _check_uris(model_uris: Sequence[str]) -> None:
    from plinth.registry.uri import parse_uri

    if not model_uris:
        raise _no_models()
    for uri in model_uris:
        if not isinstance(uri, str) or "," in uri:
            raise ConfigError(f"{uri!r} is not one model URI.", hint="Give each URI separately.")
        parse_uri(uri)


def _check_spec(spec: K8sSpec) -> None:
    _check_text(
        spec.name,
        _DNS1035,
        "The object name",
        "Use at most 63 lowercase letters, digits and '-', starting with a letter and ending "
        f"with a letter or digit, like {deployment_name(spec.model_uris)!r}.",
        most=63,
    )
    _check_text(spec.namespace, _DNS1123, "The namespace", "Use lowercase letters, digits, '-'.")
    _check_text(spec.image, _IMAGE, "The image", "Give one like 'registry.example/plinth:0.1'.")
    for attr in ("env_from_secret", "env_from_config_map", "service_account"):
        if getattr(spec, attr) is not None:
            hint = "Use lowercase letters, digits and '-', or leave it unset."
            _check_text(getattr(spec, attr), _DNS1123, attr, hint)
    for attr, low, high in (
        ("min_replicas", 1, None),
        ("max_replicas", 1, None),
        ("target_cpu_percent", 1, 100),
        ("gpus", 0, None),
        ("workers", 1, None),
        ("port", 1, 65535),
        ("startup_timeout_s", 10, None),
    ):
        _check_int(spec, attr, low, high)
    if spec.min_replicas > spec.max_replicas:
        raise ConfigError(
            f"min_replicas ({spec.min_replicas}) is more than max_replicas ({spec.max_replicas}).",
            hint="Raise max_replicas or lower min_replicas; equal values fix the replica count.",
        )
    inflight = spec.target_inflight
    if inflight is not None and (not isinstance(inflight, int | float) or not inflight > 0):
        raise ConfigError(
            f"target_inflight must be a positive number, not {inflight!r}.",
            hint="Give the average number of in-flight requests per pod to scale at, like 8.",
        )
    hint = "Give a Prometheus metric name, like 'plinth_inflight_requests'."
    _check_text(spec.inflight_metric, _METRIC, "The in-flight metric", hint)
    _check_text(spec.cpu, _CPU, "The CPU quantity", "Write cores ('2', '0.5') or '500m'.")
    if _cpu_cores(spec.cpu) <= 0:
        raise ConfigError("The CPU quantity must be more than 0.", hint="Write '500m' or '2'.")
    hint = "Write bytes with a unit suffix, like '512Mi', '2Gi' or '1G' (not '1GB')."
    _check_text(spec.memory, _MEMORY, "The memory quantity", hint)
    if _memory_bytes(spec.memory) < 64 * 1024**2:
        raise ConfigError(
            f"The memory quantity {spec.memory!r} is less than 64Mi, too little for a server.",
            hint="Did you forget the unit? Write '512Mi' or '2Gi'.",
        )
    for key, value in spec.env.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key) or not isinstance(value, str):
            raise ConfigError(
                f"The environment variable {key!r}={value!r} is not valid.",
                hint="Names are letters, digits, '_', '-' and '.', not starting with a digit; "
                "values are strings (quote numbers).",
            )
    _check_labels(spec.labels)


def _cpu_cores(text: str) -> float:
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _quantity(value: float) -> str:
    """A number as a Kubernetes quantity: ``8`` or ``2500m``."""
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


_SELECTOR_KEYS = ("app.kubernetes.io/name", "app.kubernetes.io/instance")


def _labels(spec: K8sSpec) -> tuple[dict[str, str], dict[str, str]]:
    """(selector labels, all labels) of the spec's objects."""
    selector = {"app.kubernetes.io/name": "plinth-serving", "app.kubernetes.io/instance": spec.name}
    labels = {
        **selector,
        "app.kubernetes.io/component": "inference",
        "app.kubernetes.io/part-of": "plinth",
        "app.kubernetes.io/managed-by": "plinth",
        **spec.labels,
    }
    return selector, labels


def _meta(spec: K8sSpec, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": spec.name, "namespace": spec.namespace, "labels": dict(labels)}


def _probe(path: str, period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _container(spec: K8sSpec) -> dict[str, Any]:
    resources: dict[str, dict[str, str]] = {
        "requests": {"cpu": spec.cpu, "memory": spec.memory},
        "limits": {"cpu": spec.cpu, "memory": spec.memory},
    }
    if spec.gpus:
        resources["limits"]["nvidia.com/gpu"] = str(spec.gpus)
    env = {"PLINTH_HOME": HOME_MOUNT, "PLINTH_USER": spec.name, "PYTHONUNBUFFERED": "1"}
    env.update(spec.env)
    env_from: list[dict[str, Any]] = []
    if spec.env_from_config_map:
        env_from.append({"configMapRef": {"name": spec.env_from_config_map}})
    if spec.env_from_secret:
        env_from.append({"secretRef": {"name": spec.env_from_secret}})
    command = ["plinth", "serve", ",".join(spec.model_uris), "--host", "0.0.0.0"]
    command += ["--port", str(spec.port), "--workers", str(spec.workers)]
    container: dict[str, Any] = {
        "name": "server",
        "image": spec.image,
        "command": command,
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in env.items()],
    }
    if env_from:
        container["envFrom"] = env_from
    period = 5
    container |= {
        "resources": resources,
        # Model loading gets startup_timeout_s; liveness only starts once the server is up.
        "startupProbe": _probe(LIVE_PATH, period, 2, -(-spec.startup_timeout_s // period)),
        "readinessProbe": _probe(READY_PATH, period, 2, 2),
        "livenessProbe": _probe(LIVE_PATH, 10, 5, 3),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(DRAIN_SECONDS)]}}},
        "volumeMounts": [
            {"name": "plinth-home", "mountPath": HOME_MOUNT},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    return container


def _deployment(spec: K8sSpec) -> dict[str, Any]:
    selector, labels = _labels(spec)
    pod: dict[str, Any] = {
        "terminationGracePeriodSeconds": GRACE_SECONDS,
        "containers": [_container(spec)],
        "volumes": [{"name": "plinth-home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    if spec.service_account:
        pod["serviceAccountName"] = spec.service_account
    if spec.gpus:
        pod["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    deploy_spec: dict[str, Any] = {}
    if spec.min_replicas == spec.max_replicas:
        deploy_spec["replicas"] = spec.min_replicas
    deploy_spec |= {
        "selector": {"matchLabels": dict(selector)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": {
            "metadata": {
                "labels": dict(labels),
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(spec.port),
                    "prometheus.io/path": METRICS_PATH,
                    "plinth.dev/models": ",".join(spec.model_uris),
                },
            },
            "spec": pod,
        },
    }
    meta = _meta(spec, labels)
    meta["annotations"] = {"plinth.dev/models": ",".join(spec.model_uris)}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": deploy_spec}


def _service(spec: K8sSpec) -> dict[str, Any]:
    selector, labels = _labels(spec)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(spec, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _autoscaler(spec: K8sSpec) -> dict[str, Any]:
    _, labels = _labels(spec)
    metrics: list[dict[str, Any]] = [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": spec.target_cpu_percent},
            },
        }
    ]
    if spec.target_inflight is not None:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": spec.inflight_metric},
                    "target": {
                        "type": "AverageValue",
                        "averageValue": _quantity(spec.target_inflight),
                    },
                },
            }
        )
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(spec, labels),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            "metrics": metrics,
        },
    }


def _disruption_budget(spec: K8sSpec) -> dict[str, Any]:
    selector, labels = _labels(spec)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(spec, labels),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": dict(selector)}},
    }


def k8s_manifests(spec: K8sSpec) -> list[dict[str, Any]]:
    """The Kubernetes objects that serve ``spec``'s models, as plain dicts, in apply order.

    Always a Deployment and a Service; a HorizontalPodAutoscaler when
    ``max_replicas > min_replicas``; a PodDisruptionBudget when ``min_replicas > 1``.

    Example:
        >>> docs = k8s_manifests(K8sSpec(model_uris=["delay"], min_replicas=2))
        >>> [d["kind"] for d in docs]
        ['Deployment', 'Service', 'HorizontalPodAutoscaler', 'PodDisruptionBudget']
    """
    docs = [_deployment(spec), _service(spec)]
    if spec.max_replicas > spec.min_replicas:
        docs.append(_autoscaler(spec))
    if spec.min_replicas > 1:
        docs.append(_disruption_budget(spec))
    return docs


_SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "datetime": (str,),
    "date": (str,),
}
_SHAPE_HINT = "Compare the manifest with the Kubernetes API reference for its kind."
_TYPE_WORDS = {
    "str": "a string",
    "int": "a whole number",
    "float": "a number",
    "bool": "true/false",
}


def _where(path: str) -> str:
    return path or "the document root"


def _check_value(value: Any, kind: str, path: str, models: Any, config: Any) -> None:
    """Check ``value`` against the client type string ``kind``; raise naming ``path``."""
    import datetime

    if value is None or kind == "object":
        return
    if kind.startswith("list["):
        if not isinstance(value, list):
            raise ConfigError(
                f"{_where(path)} must be a list, not {type(value).__name__}.", hint=_SHAPE_HINT
            )
        for i, item in enumerate(value):
            _check_value(item, kind[5:-1], f"{path}[{i}]", models, config)
        return
    if kind.startswith(("dict[", "dict(")):
        if not isinstance(value, dict):
            raise ConfigError(
                f"{_where(path)} must be a mapping, not {type(value).__name__}.", hint=_SHAPE_HINT
            )
        inner = kind[5:-1].split(",", 1)[1].strip()
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(
                    f"{_where(path)} has the key {key!r}, which is not a string.",
                    hint="Quote the key.",
                )
            _check_value(item, inner, f"{path}[{key!r}]", models, config)
        return
    if kind in _SCALARS:
        ok = isinstance(value, _SCALARS[kind]) and (kind == "bool" or not isinstance(value, bool))
        if kind in ("datetime", "date") and isinstance(value, datetime.date):
            ok = True
        if not ok:
            raise ConfigError(
                f"{_where(path)} must be {_TYPE_WORDS.get(kind, kind)}, not "
                f"{type(value).__name__} ({value!r}).",
                hint="Quote numbers and true/false where Kubernetes expects strings (quantities, "
                "labels, annotations, env values)."
                if kind == "str"
                else "Write the value without quotes, in the field's type.",
            )
        return
    klass = getattr(models, kind, None)
    if klass is None or not hasattr(klass, "openapi_types"):
        return  # a type this client version does not describe: accept it
    if not isinstance(value, dict):
        raise ConfigError(
            f"{_where(path)} must be a mapping ({kind}), not {type(value).__name__}.",
            hint=_SHAPE_HINT,
        )
    by_key = {klass.attribute_map[a]: (a, t) for a, t in klass.openapi_types.items()}
    for key, item in value.items():
        here = f"{path}.{key}" if path else str(key)
        if key not in by_key:
            close = difflib.get_close_matches(str(key), list(by_key), n=1)
            raise ConfigError(
                f"{here} is not a field of {kind}.",
                hint=f"Did you mean '{close[0]}'?"
                if close
                else f"Known fields: {', '.join(sorted(by_key))}.",
            )
        _check_value(item, by_key[key][1], here, models, config)
    present = {by_key[k][0]: v for k, v in value.items() if v is not None}
    try:
        klass(**present, local_vars_configuration=config)
    except ValueError as exc:
        missing = re.search(r"`(\w+)`, must not be `None`", str(exc))
        name = klass.attribute_map.get(missing.group(1), "?") if missing else None
        if name is None:
            raise ConfigError(
                f"{_where(path)} is not a valid {kind}: {exc}", hint=_SHAPE_HINT
            ) from None
        raise ConfigError(
            f"{path + '.' if path else ''}{name} is required in {kind} but missing.",
            hint="Add the field.",
        ) from None


def validate_manifest(doc: Mapping[str, Any]) -> Any:
    """Check one manifest against the ``kubernetes`` client's schema; return the client object.

    Every key at every level must be a field of the client model there (a misspelled
    ``readnessProbe`` is refused with its path), values must have the field's type, and
    required fields must be present; then the document is deserialized into its client model
    (``V1Deployment``, ``V1Service``, ``V2HorizontalPodAutoscaler``, ``V1PodDisruptionBudget``).
    Needs the ``k8s`` extra.

    Example:
        >>> doc = k8s_manifests(K8sSpec(model_uris=["delay"]))[0]
        >>> type(validate_manifest(doc)).__name__
        'V1Deployment'
    """
    try:
        from kubernetes import client
    except ImportError:
        raise ConfigError(
            "Validating Kubernetes manifests needs the kubernetes client.",
            hint="Install it with: pip install 'plinth-ai[k8s]'.",
        ) from None
    if not isinstance(doc, Mapping):
        raise ConfigError(
            f"A manifest must be a mapping, not {type(doc).__name__}.", hint=_SHAPE_HINT
        )
    kind = doc.get("kind")
    if kind not in KINDS:
        raise ConfigError(
            f"Cannot validate a manifest of kind {kind!r}.",
            hint=f"Known kinds: {', '.join(KINDS)}.",
        )
    api_version, class_name = KINDS[kind]
    if doc.get("apiVersion") != api_version:
        raise ConfigError(
            f"A {kind} manifest has apiVersion {doc.get('apiVersion')!r}.",
            hint=f"Use apiVersion: {api_version}.",
        )
    config = client.Configuration()
    config.client_side_validation = True
    meta = doc.get("metadata")
    name = meta.get("name", "?") if isinstance(meta, Mapping) else "?"
    try:
        _check_value(dict(doc), class_name, "", client.models, config)
    except ConfigError as exc:
        raise ConfigError(f"{kind} {name!r}: {exc.message}", hint=exc.hint) from None
    try:
        with client.ApiClient(configuration=config) as api:
            return api._ApiClient__deserialize(dict(doc), class_name)  # type: ignore[attr-defined]
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{kind} {name!r} does not fit the Kubernetes schema: {exc}", hint=_SHAPE_HINT
        ) from None


def _file_name(spec: K8sSpec, kind: str) -> str:
    return f"{spec.name}-{kind.lower()}.yaml"


def write_manifests(
    spec: K8sSpec, folder: str | Path, *, validate: bool | None = None
) -> list[Path]:
    """Write one YAML file per object, ``FOLDER/<name>-<kind>.yaml``; return their paths.

    Files are written atomically. A file this spec wrote before for an object it no longer
    produces (the autoscaler once ``min_replicas == max_replicas``, the disruption budget once
    ``min_replicas == 1``) is removed, so ``kubectl apply -f FOLDER`` sees the current set; delete
    such an object in the cluster with ``kubectl delete``. ``validate`` checks every object
    with :func:`validate_manifest`: ``None`` (the default) when the ``kubernetes`` client is
    installed, ``True`` always (an error without it), ``False`` never.

    Example:
        >>> import tempfile
        >>> paths = write_manifests(K8sSpec(model_uris=["delay"]), tempfile.mkdtemp())
        >>> [p.name for p in paths][:2]
        ['plinth-delay-deployment.yaml', 'plinth-delay-service.yaml']
    """
    import yaml

    from plinth._core.files import atomic_write_bytes

    docs = k8s_manifests(spec)
    if validate is None:
        import importlib.util

        validate = importlib.util.find_spec("kubernetes") is not None
    if validate:
        for doc in docs:
            validate_manifest(doc)
    target = Path(folder)
    paths = []
    for doc in docs:
        path = target / _file_name(spec, doc["kind"])
        text = f"# Generated by Plinth for {', '.join(spec.model_uris)}.\n"
        text += yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
        atomic_write_bytes(path, text.encode())
        paths.append(path)
    for kind in KINDS:
        stale = target / _file_name(spec, kind)
        if stale not in paths and stale.exists():
            stale.unlink()
    return paths
