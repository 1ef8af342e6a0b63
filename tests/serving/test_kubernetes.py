"""Kubernetes manifests for serving: shape, schema validation, bad input, YAML files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from plinth.errors import ConfigError
from plinth.serving.kubernetes import (
    K8sSpec,
    deployment_name,
    k8s_manifests,
    validate_manifest,
    write_manifests,
)

pytest.importorskip("kubernetes")


def _by_kind(spec: K8sSpec) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in k8s_manifests(spec)}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


@pytest.fixture
def spec() -> K8sSpec:
    return K8sSpec(
        model_uris=["delay@champion", "models:/taxi_fare/3"],
        image="registry.example.com/plinth:0.1.0",
        min_replicas=2,
        max_replicas=8,
        target_inflight=8,
        cpu="500m",
        memory="1Gi",
        workers=2,
        namespace="ml",
        env={"LOG_LEVEL": "info"},
        env_from_config_map="plinth-urls",
        labels={"team": "delays"},
    )


def test_every_manifest_validates_against_the_client_schema(spec):
    docs = k8s_manifests(spec)
    assert [d["kind"] for d in docs] == [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]
    classes = [type(validate_manifest(d)).__name__ for d in docs]
    assert classes == [
        "V1Deployment",
        "V1Service",
        "V2HorizontalPodAutoscaler",
        "V1PodDisruptionBudget",
    ]
    deployment = validate_manifest(docs[0])
    assert deployment.spec.template.spec.containers[0].readiness_probe.http_get.path == (
        "/v2/health/ready"
    )


def test_names_and_labels(spec):
    assert spec.name == "plinth-delay-taxi-fare"
    assert deployment_name(["Delay.Model@champion"]) == "plinth-delay-model"
    assert len(deployment_name(["m" + "x" * 120])) == 63
    docs = k8s_manifests(spec)
    for doc in docs:
        assert doc["metadata"]["name"] == spec.name
        assert doc["metadata"]["namespace"] == "ml"
        assert doc["metadata"]["labels"]["team"] == "delays"
    deployment, service = docs[0], docs[1]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert "team" not in selector
    assert service["spec"]["selector"] == selector
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()


def test_container_command_probes_and_shutdown(spec):
    deployment = _by_kind(spec)["Deployment"]
    container = _container(deployment)
    assert container["command"] == [
        "plinth",
        "serve",
        "delay@champion,models:/taxi_fare/3",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--workers",
        "2",
    ]
    assert container["image"] == "registry.example.com/plinth:0.1.0"
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    pod = deployment["spec"]["template"]["spec"]
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep" and int(sleep[1]) < pod["terminationGracePeriodSeconds"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == "8080"


def test_environment_resources_and_service(spec):
    docs = _by_kind(spec)
    container = _container(docs["Deployment"])
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LOG_LEVEL"] == "info"
    assert env["PLINTH_HOME"] == "/var/lib/plinth"
    assert container["envFrom"] == [
        {"configMapRef": {"name": "plinth-urls"}},
        {"secretRef": {"name": "plinth"}},
    ]
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "500m", "memory": "1Gi"},
    }
    ports = docs["Service"]["spec"]["ports"]
    assert docs["Service"]["spec"]["type"] == "ClusterIP"
    assert ports == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    no_secret = K8sSpec(model_uris=["delay"], env_from_secret=None)
    assert "envFrom" not in _container(_by_kind(no_secret)["Deployment"])


def test_autoscaler_and_disruption_budget(spec):
    docs = _by_kind(spec)
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 8)
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": spec.name,
    }
    cpu, pods = hpa["metrics"]
    assert cpu["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert pods["pods"]["metric"]["name"] == "plinth_inflight_requests"
    assert pods["pods"]["target"] == {"type": "AverageValue", "averageValue": "8"}
    assert "replicas" not in docs["Deployment"]["spec"]  # owned by the autoscaler
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] == 1

    single = _by_kind(K8sSpec(model_uris=["delay"], target_inflight=2.5))
    assert "PodDisruptionBudget" not in single
    assert len(single["HorizontalPodAutoscaler"]["spec"]["metrics"]) == 1 + 1
    assert (
        single["HorizontalPodAutoscaler"]["spec"]["metrics"][1]["pods"]["target"]["averageValue"]
        == "2500m"
    )
    cpu_only = _by_kind(K8sSpec(model_uris=["delay"]))["HorizontalPodAutoscaler"]
    assert [m["type"] for m in cpu_only["spec"]["metrics"]] == ["Resource"]

    fixed = _by_kind(K8sSpec(model_uris=["delay"], min_replicas=3, max_replicas=3))
    assert "HorizontalPodAutoscaler" not in fixed
    assert fixed["Deployment"]["spec"]["replicas"] == 3
    assert "PodDisruptionBudget" in fixed


def test_gpu_resource_and_toleration():
    docs = k8s_manifests(K8sSpec(model_uris=["delay"], gpus=1))
    validate_manifest(docs[0])
    pod = docs[0]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    cpu_pod = k8s_manifests(K8sSpec(model_uris=["delay"]))[0]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in cpu_pod["containers"][0]["resources"]["limits"]
    assert "tolerations" not in cpu_pod


def _broken(spec: K8sSpec, change) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(k8s_manifests(spec)[0])
    change(doc)
    return doc


def _rename_probe(doc: dict[str, Any]) -> None:
    container = _container(doc)
    container["readnessProbe"] = container.pop("readinessProbe")


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (_rename_probe, "spec.template.spec.containers[0].readnessProbe", "readinessProbe"),
        (lambda d: d["spec"].update(replica=3), "spec.replica", "replicas"),
        (lambda d: d.update(extra=1), "extra", "not a field of V1Deployment"),
        (
            lambda d: d["spec"]["template"]["spec"].update(terminationGracePeriodSeconds="30"),
            "spec.template.spec.terminationGracePeriodSeconds",
            "whole number",
        ),
        (
            lambda d: _container(d)["resources"]["limits"].update(cpu=2),
            "spec.template.spec.containers[0].resources.limits['cpu']",
            "must be a string",
        ),
        (
            lambda d: d["spec"]["template"]["spec"].update(containers={"name": "x"}),
            "spec.template.spec.containers",
            "must be a list",
        ),
        (lambda d: d["spec"].pop("selector"), "spec.selector", "required"),
        (lambda d: _container(d).pop("name"), "spec.template.spec.containers[0].name", "required"),
    ],
)
def test_bad_manifests_are_rejected_naming_the_path(spec, change, path, words):
    with pytest.raises(ConfigError) as info:
        validate_manifest(_broken(spec, change))
    assert path in str(info.value)
    assert words in str(info.value)
    assert info.value.hint


def test_unknown_kind_or_api_version_is_rejected(spec):
    doc = k8s_manifests(spec)[0]
    with pytest.raises(ConfigError, match="apiVersion: apps/v1"):
        validate_manifest({**doc, "apiVersion": "extensions/v1beta1"})
    with pytest.raises(ConfigError, match="Known kinds"):
        validate_manifest({**doc, "kind": "StatefulSet"})


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"model_uris": []}, "No model URIs"),
        ({"model_uris": ["delay,other"]}, "not one model URI"),
        ({"model_uris": ["models:/"]}, "not a model URI"),
        ({"name": "Plinth_Delay"}, "object name"),
        ({"name": "p" * 64}, "object name"),
        ({"min_replicas": 3, "max_replicas": 2}, "more than max_replicas"),
        ({"min_replicas": 0}, "min_replicas"),
        ({"cpu": "2 cores"}, "CPU quantity"),
        ({"cpu": "0m"}, "more than 0"),
        ({"memory": "1GB"}, "memory quantity"),
        ({"memory": "512"}, "forget the unit"),
        ({"gpus": -1}, "gpus"),
        ({"workers": 0}, "workers"),
        ({"port": 70000}, "port"),
        ({"target_cpu_percent": 0}, "target_cpu_percent"),
        ({"target_inflight": 0}, "target_inflight"),
        ({"namespace": "ML"}, "namespace"),
        ({"image": "plinth latest"}, "image"),
        ({"env": {"1BAD": "x"}}, "environment variable"),
        ({"env": {"THREADS": 4}}, "environment variable"),
        ({"env_from_secret": "Bad_Secret"}, "env_from_secret"),
        ({"labels": {"team": "a b"}}, "not a valid Kubernetes label"),
        ({"labels": {"app.kubernetes.io/instance": "x"}}, "select the deployment"),
    ],
)
def test_bad_inputs_raise_config_errors_with_hints(changes, match):
    arguments = {"model_uris": ["delay"], **changes}
    with pytest.raises(ConfigError, match=match) as info:
        K8sSpec(**arguments)
    assert info.value.hint


def test_quantities_that_are_accepted():
    for cpu in ("500m", "2", "0.5", "1.25"):
        assert K8sSpec(model_uris=["delay"], cpu=cpu).cpu == cpu
    for memory in ("512Mi", "2Gi", "1G", "100M", "1.5Gi", "268435456"):
        assert K8sSpec(model_uris=["delay"], memory=memory).memory == memory


def test_yaml_files_are_written_and_reload(tmp_path: Path, spec):
    paths = write_manifests(spec, tmp_path / "k8s", validate=True)
    assert [p.name for p in paths] == [
        f"{spec.name}-deployment.yaml",
        f"{spec.name}-service.yaml",
        f"{spec.name}-horizontalpodautoscaler.yaml",
        f"{spec.name}-poddisruptionbudget.yaml",
    ]
    reloaded = [yaml.safe_load(p.read_text()) for p in paths]
    assert reloaded == k8s_manifests(spec)
    for doc in reloaded:
        validate_manifest(doc)
    first_keys = list(reloaded[0])
    assert first_keys[:2] == ["apiVersion", "kind"]  # not sorted

    # Fewer objects next time: the files of objects no longer produced go away.
    fixed = K8sSpec(name=spec.name, model_uris=["delay"], min_replicas=1, max_replicas=1)
    again = write_manifests(fixed, tmp_path / "k8s")
    assert sorted(p.name for p in (tmp_path / "k8s").iterdir()) == sorted(p.name for p in again)
    assert len(again) == 2
