"""``plinth deploy --target ray``: the same app under Ray Serve with autoscaling replicas."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

from plinth.serving.background import free_port
from plinth.serving.loadgen import wait_ready
from plinth.serving.options import ServeOptions
from plinth.serving.ray_serve import RayServeSpec, deploy_ray, undeploy_ray
from tests.serving.conftest import expected

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_ray_serve_answers_like_plinth_serve(ws, ray_address):
    import ray
    from ray import serve

    ray.init(address=ray_address, logging_level="ERROR", log_to_driver=False)
    spec = RayServeSpec("risk", min_replicas=1, max_replicas=2, num_cpus=0.5, port=free_port())
    try:
        url = deploy_ray(ws, ["risk@champion"], spec, options=ServeOptions(log_predictions=False))
        wait_ready(url, timeout_s=180)
        request = urllib.request.Request(
            f"{url}/v1/models/risk/predict",
            json.dumps({"records": [{"k": 3, "x": 2.0}, {"k": 0, "x": -1.0}]}).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            reply = json.loads(answer.read())
        np.testing.assert_allclose(reply["predictions"], expected(ws, 1, [3, 0], [2.0, -1.0]))
        status = serve.status().applications["risk"]
        assert status.status == "RUNNING"
        config = serve.get_app_handle("risk")  # the app is reachable by handle too
        assert config is not None
    finally:
        undeploy_ray("risk")
        serve.shutdown()
        ray.shutdown()


def test_replica_settings_are_checked():
    from plinth.errors import ConfigError

    with pytest.raises(ConfigError, match="Replicas"):
        RayServeSpec("risk", min_replicas=3, max_replicas=2)
    with pytest.raises(ConfigError, match="target-inflight"):
        RayServeSpec("risk", target_ongoing_requests=0)
    assert RayServeSpec("risk", min_replicas=0, max_replicas=3).autoscaling()["min_replicas"] == 0
