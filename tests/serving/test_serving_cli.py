"""The serving commands' bad input and the Kubernetes target, through the real CLI."""

from __future__ import annotations

import yaml

from plinth.cli.main import main


def test_deploy_to_k8s_writes_valid_manifests_for_the_deployment(ws, tmp_path, capsys):
    from plinth.serving.kubernetes import validate_manifest

    out = tmp_path / "k8s"
    home = str(ws.home)
    code = main(
        [
            "deploy",
            "risk@champion",
            "--canary",
            "risk:2",
            "--target",
            "k8s",
            "-o",
            str(out),
            "--max-replicas",
            "5",
            "--min-replicas",
            "2",
            "--home",
            home,
        ]
    )
    assert code == 0, capsys.readouterr().err
    kinds = {}
    for path in sorted(out.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            validate_manifest(doc)
            kinds[doc["kind"]] = doc
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= set(kinds)
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert "risk" in " ".join(container.get("args", []) + container.get("command", []))
    assert kinds["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 5
    assert main(["deploy", "list", "--json", "--home", home]) == 0
    assert '"target": "k8s"' in capsys.readouterr().out


def test_bad_input_exits_non_zero_without_a_traceback(ws, capsys):
    home = str(ws.home)
    cases = [
        (["serve", "risk@champion,risk:2", "--home", home], "named twice"),
        (["serve", "risk@champion", "--workers", "0", "--home", home], "--workers"),
        (["deploy", "nope@champion", "--home", home], "nope"),
        (
            [
                "deploy",
                "risk@champion",
                "--canary",
                "risk:2",
                "--canary-weight",
                "150",
                "--home",
                home,
            ],
            "between 0 and 100",
        ),
        (["deploy", "rollback", "risk", "--home", home], "No deployment"),
        (["deploy", "risk@champion", "--target", "mars", "--home", home], "Unknown target"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
