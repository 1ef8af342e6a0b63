"""The public API is pinned: changing it must be a deliberate edit of this test."""

from __future__ import annotations

import inspect

import plinth
from plinth import errors


def test_public_names_are_pinned():
    assert sorted(plinth.__all__) == [
        "ArtifactStore",
        "Contract",
        "Entity",
        "FeatureService",
        "FeatureView",
        "PlinthError",
        "Resources",
        "Run",
        "Settings",
        "Table",
        "TableInfo",
        "VersionInfo",
        "Workspace",
        "__version__",
        "pipeline",
        "step",
    ]
    for name in plinth.__all__:
        assert getattr(plinth, name) is not None


def test_lake_methods_are_pinned():
    from plinth.lake import Lake

    public = sorted(n for n, _ in inspect.getmembers(Lake, inspect.isfunction) if n[0] != "_")
    assert public == [
        "added_since",
        "dataset",
        "delete",
        "delta_table",
        "history",
        "ingest",
        "read",
        "reconcile",
        "record_version",
        "scan",
        "table",
        "table_key",
        "table_uri",
        "tables",
        "version",
    ]
    params = list(inspect.signature(Lake.ingest).parameters)
    assert params == [
        "self",
        "source",
        "table",
        "mode",
        "key",
        "timestamp",
        "evolve",
        "sql_url",
        "format",
        "types",
        "progress",
        "checks",
        "encrypt",
    ]


def test_quality_service_methods_are_pinned():
    from plinth.quality.service import Quality

    public = sorted(n for n, _ in inspect.getmembers(Quality, inspect.isfunction) if n[0] != "_")
    assert public == [
        "apply",
        "contract",
        "contracts",
        "contracts_dir",
        "flush_spool",
        "gate_factory",
        "on_version",
        "purge",
        "quarantined",
        "record_result",
        "recover_spools",
        "release",
        "require_contract",
        "results",
        "spool_dir",
        "view_quarantined",
    ]


def test_feature_store_methods_are_pinned():
    from plinth.features.service import Features

    public = sorted(n for n, _ in inspect.getmembers(Features, inspect.isfunction) if n[0] != "_")
    assert public == [
        "apply",
        "definitions",
        "historical",
        "materialize",
        "online",
        "skew",
        "training_set",
        "view",
        "view_info",
        "view_infos",
        "views",
        "watermark",
    ]
    params = list(inspect.signature(Features.historical).parameters)
    assert params == ["self", "spine", "features", "timestamp", "record"]


def test_every_error_is_a_plinth_error_with_a_status():
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.PlinthError)
        assert 400 <= cls.status_code < 500
        assert cls.__doc__ and cls.__doc__.strip()
        assert name in errors.__doc__


def test_public_functions_have_docstrings_with_a_summary():
    import plinth.lake.lake as lake_module
    import plinth.storage.artifacts as artifacts
    import plinth.workspace as workspace

    for module in (lake_module, artifacts, workspace):
        for name, obj in inspect.getmembers(module):
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                assert obj.__doc__, f"{module.__name__}.{name} has no docstring"


def test_run_methods_are_pinned():
    from plinth.tracking.run import Run

    public = sorted(n for n, _ in inspect.getmembers(Run, inspect.isfunction) if n[0] != "_")
    assert public == [
        "end",
        "flush",
        "log_artifact",
        "log_metric",
        "log_metrics",
        "log_model",
        "log_param",
        "log_params",
        "set_tag",
        "set_tags",
        "use",
    ]
    assert list(inspect.signature(plinth.Workspace.run).parameters) == [
        "self",
        "experiment",
        "params",
        "tags",
        "parent",
        "capture",
    ]


def test_monitoring_api_is_pinned():
    import plinth.monitoring.alerts as alerts
    import plinth.monitoring.facts as facts
    import plinth.monitoring.history as history
    import plinth.monitoring.performance as performance
    import plinth.monitoring.report as report
    import plinth.monitoring.rules as rules
    import plinth.monitoring.runner as runner
    import plinth.monitoring.summary as summary

    assert list(inspect.signature(facts.observe).parameters) == ["ws", "target", "window", "now"]
    assert list(inspect.signature(runner.run_once).parameters) == ["ws", "rules", "now", "manager"]
    assert list(inspect.signature(alerts.AlertManager.evaluate).parameters) == [
        "self",
        "rule",
        "model_name",
        "facts",
        "now",
    ]
    public = sorted(
        n for n, _ in inspect.getmembers(alerts.AlertManager, inspect.isfunction) if n[0] != "_"
    )
    assert public == ["alerts", "evaluate", "get", "history"]
    assert callable(rules.load_rules) and callable(rules.parse_condition)
    assert callable(history.update_history) and callable(history.stored_windows)
    assert callable(performance.log_performance) and callable(report.write_report)
    assert callable(summary.monitoring_summary)
    for module in (alerts, facts, history, performance, report, rules, runner, summary):
        for name, obj in inspect.getmembers(module):
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                assert obj.__doc__, f"{module.__name__}.{name} has no docstring"
