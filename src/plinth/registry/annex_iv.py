"""The EU AI Act Annex IV technical documentation fields of a model card.

Annex IV of Regulation (EU) 2024/1689 lists what the technical documentation of a high-risk
AI system contains. Each field here is filled from the catalog (``source: "catalog"``), from a
tag a person wrote (``source: "tag:<name>"``), or left as "To be completed by the provider."
(``completed: false``): the registry records facts, it does not judge risk or conformity.

=========================== ===================================================== ========
section                     fields                                                Annex IV
=========================== ===================================================== ========
general_description         purpose, provider, version, software, hardware, I/O   1
development_process         methods, design, resources, validation, code, security 2
data_governance             training data, provenance, preparation, quality       2(d)
metrics_accuracy            metrics, per-group accuracy, why these metrics        3, 4
risk_management             limitations, foreseeable outcomes, risk system        3, 5
human_oversight             oversight measures, promotion controls                2(e), 3
lifecycle                   versions, alias changes, planned changes, monitoring  6, 9
standards                   standards applied, declaration of conformity          7, 8
=========================== ===================================================== ========

:func:`annex_iv_points` regroups the same fields under the nine points of Annex IV, one heading
each, with a status per point (``filled``, ``partial``, ``needs_human``); the documentation
bundle (``plinth docs``) writes that form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TO_COMPLETE = "To be completed by the provider."


def _field(name: str, value: Any, source: str = "catalog") -> dict[str, Any]:
    if value is None or value == "" or value == [] or value == {}:
        return {"name": name, "value": TO_COMPLETE, "completed": False, "source": None}
    return {"name": name, "value": value, "completed": True, "source": source}


def _tag(tags: dict[str, str], key: str, name: str) -> dict[str, Any]:
    return _field(name, tags.get(key), f"tag:{key}")


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _join(items: list[str]) -> str | None:
    return "; ".join(items) if items else None


def _software(model: dict[str, Any], run: dict[str, Any] | None) -> str | None:
    parts = []
    if model.get("library"):
        parts.append(f"{model['library']} {model.get('library_version') or ''}".strip())
    if model.get("class"):
        parts.append(f"model class {model['class']}")
    if run and run.get("python"):
        parts.append(f"Python {run['python']}")
    return _join(parts)


def _hardware(run: dict[str, Any] | None) -> str | None:
    if not run or not (run.get("cpu") or run.get("host")):
        return None
    gpus = run.get("gpus") or 0
    return f"trained on {run.get('host') or 'an unnamed host'} ({run.get('cpu') or 'CPU'}" + (
        f", {gpus} GPU{'s' if gpus != 1 else ''})" if gpus else ", no GPU)"
    )


def _io(model: dict[str, Any]) -> str | None:
    signature = model.get("signature")
    if not signature:
        return None
    inputs = signature["inputs"]
    if inputs["type"] == "tensor":
        text = f"inputs: tensor {inputs['dtype']} {inputs['shape']}"
    else:
        text = "inputs: " + ", ".join(f"{c['name']} ({c['type']})" for c in inputs["columns"])
    outputs = signature.get("outputs")
    if outputs and outputs["type"] == "tensor":
        text += f"; output: tensor {outputs['dtype']} {outputs['shape']}"
    elif outputs:
        text += "; outputs: " + ", ".join(c["name"] for c in outputs["columns"])
    return text


def _methods(run: dict[str, Any] | None) -> str | None:
    if not run:
        return None
    return (
        f"run {run['id']} of experiment '{run['experiment']}' ({run['status']}), launched "
        f"{run['launcher']}" + (f" from {run['entry_point']}" if run.get("entry_point") else "")
    )


def _resources(run: dict[str, Any] | None) -> str | None:
    if not run or not run["resources"]["processes"]:
        return None
    r = run["resources"]
    text = (
        f"{r['processes']} process(es), {r['wall_seconds']:.1f} s wall, "
        f"{r['cpu_seconds']:.1f} s CPU, peak memory {r['peak_rss_bytes'] / 2**20:.0f} MiB"
    )
    if r.get("gpu_seconds"):
        text += f", {r['gpu_seconds']:.1f} GPU-seconds"
    return text


def _training_data(training: dict[str, Any]) -> str | None:
    ts = training.get("training_set")
    if not ts or ts.get("missing"):
        return None
    tables = ", ".join(
        f"{t['table']}@{t['version']} ({t['row_count']:,} rows)"
        if t.get("row_count") is not None
        else f"{t['table']}@{t['version']}"
        for t in training["tables"]
    )
    return f"training set {ts['id']} ({ts['row_count']:,} rows) from {tables}"


def _provenance(training: dict[str, Any]) -> str | None:
    parts = []
    for table in training.get("tables", []):
        source = table.get("source") or {}
        kind = source.get("kind")
        if kind == "files":
            count = len(source.get("paths") or [])
            parts.append(f"{table['table']}@{table['version']}: {count} file(s), hashed")
        elif kind:
            parts.append(f"{table['table']}@{table['version']}: {kind} source")
    return _join(parts)


def _preparation(training: dict[str, Any]) -> str | None:
    views = training.get("feature_views") or {}
    if not views and not training.get("feature_service"):
        return None
    text = "point-in-time join of feature views " + ", ".join(
        f"{name} v{version}" for name, version in views.items()
    )
    service = training.get("feature_service")
    if service:
        text += f" (feature service {service['name']} v{service['version']})"
    return text


def _quality(training: dict[str, Any]) -> str | None:
    parts = []
    for table in training.get("tables", []):
        checks = table.get("quality")
        profile = table.get("profile")
        if checks:
            parts.append(f"{table['table']}@{table['version']}: contract {checks}")
        if profile:
            parts.append(
                f"{table['table']}@{table['version']}: profiled ({profile['column_count']} columns)"
            )
    return _join(parts)


def _metrics(evaluation: dict[str, Any]) -> str | None:
    metrics = evaluation.get("metrics") or {}
    return _join([f"{k} = {_number(v)}" for k, v in metrics.items()])


def _slices(evaluation: dict[str, Any]) -> str | None:
    slices = evaluation.get("slices") or {}
    return _join(
        [
            f"{name}: " + ", ".join(f"{k} = {_number(v)}" for k, v in values.items())
            for name, values in slices.items()
        ]
    )


def _promotion(lifecycle: dict[str, Any]) -> str | None:
    events = lifecycle.get("alias_events") or []
    gates = lifecycle.get("gates") or []
    if not events and not gates:
        return None
    parts = [
        f"{e['action']} alias '{e['alias']}' by {e['by']} at {e['at']}"
        + (f" ({e['reason']})" if e.get("reason") else "")
        for e in events
    ]
    parts += [
        f"gate {'passed' if g['passed'] else 'failed'} at {g['decided_at']} by {g['decided_by']}"
        for g in gates
    ]
    return _join(parts)


def _versions(model: dict[str, Any], lifecycle: dict[str, Any]) -> str | None:
    versions = lifecycle.get("versions") or []
    return _join(
        [
            f"v{v['version']} {v['created_at']} by {v['created_by']}"
            + (" (this version)" if v["version"] == model["version"] else "")
            for v in versions
        ]
    )


def annex_iv(card: dict[str, Any], tags: dict[str, str]) -> list[dict[str, Any]]:
    """The Annex IV sections of a card, each with its fields (see the module docstring).

    Example:
        >>> sections = annex_iv({"model": {"name": "m", "version": 1, "uri": "models:/m/1",
        ...     "created_at": "2024-01-01", "created_by": "ana"}, "training_data": {},
        ...     "evaluation": {}, "limitations": [], "lifecycle": {}, "run": None}, {})
        >>> sections[0]["fields"][0]["value"]
        'To be completed by the provider.'
    """
    model = card["model"]
    run = card.get("run")
    training = card.get("training_data") or {}
    evaluation = card.get("evaluation") or {}
    lifecycle = card.get("lifecycle") or {}
    intended = card.get("intended_use") or {}
    purpose = tags.get("intended_use") or intended.get("description")
    code = None
    if model.get("code_commit"):
        code = f"git commit {model['code_commit']}" + (
            " with uncommitted changes" if model.get("code_dirty") else ""
        )
    security = (
        f"model files stored content-addressed (sha256) and listed by manifest "
        f"sha256:{model.get('manifest_digest')}; every file is verified on load and pickled "
        "files are only loaded when their digest matches the catalog"
    )
    return [
        {
            "id": "general_description",
            "title": "1. General description of the AI system",
            "fields": [
                _field(
                    "Intended purpose",
                    purpose,
                    "tag:intended_use" if tags.get("intended_use") else "catalog",
                ),
                _tag(tags, "provider", "Provider"),
                _field(
                    "Version",
                    f"{model['name']} version {model['version']} ({model['uri']}), registered "
                    f"{model['created_at']} by {model['created_by']}",
                ),
                _field("Software and versions", _software(model, run)),
                _field("Hardware", _hardware(run)),
                _field("Inputs and outputs", _io(model)),
                _tag(tags, "users", "Intended users"),
                _tag(tags, "instructions_for_use", "Instructions for use"),
            ],
        },
        {
            "id": "development_process",
            "title": "2. Elements of the AI system and its development process",
            "fields": [
                _field("Methods and steps", _methods(run)),
                _field(
                    "Design choices and parameters",
                    _join([f"{k} = {v}" for k, v in (run or {}).get("params", {}).items()]),
                ),
                _field("Computational resources", _resources(run)),
                _field("Validation and testing", _metrics(evaluation)),
                _field("Code version", code),
                _field("Cybersecurity measures", security),
            ],
        },
        {
            "id": "data_governance",
            "title": "2(d). Data and data governance",
            "fields": [
                _field("Training data", _training_data(training)),
                _field("Data provenance", _provenance(training)),
                _field("Data preparation", _preparation(training)),
                _field("Data quality checks", _quality(training)),
                _tag(tags, "data_assumptions", "Assumptions and representativeness"),
            ],
        },
        {
            "id": "metrics_accuracy",
            "title": "3-4. Performance metrics and accuracy",
            "fields": [
                _field("Metrics", _metrics(evaluation)),
                _field("Accuracy for specific groups", _slices(evaluation)),
                _tag(tags, "metrics_rationale", "Appropriateness of the metrics"),
            ],
        },
        {
            "id": "risk_management",
            "title": "5. Risk management and limitations",
            "fields": [
                _field("Known limitations", _join(card.get("limitations") or [])),
                _tag(tags, "risks", "Foreseeable unintended outcomes and risks"),
                _tag(tags, "risk_management", "Risk management system"),
            ],
        },
        {
            "id": "human_oversight",
            "title": "Human oversight",
            "fields": [
                _tag(tags, "human_oversight", "Human oversight measures"),
                _field("Recorded promotion decisions", _promotion(lifecycle)),
            ],
        },
        {
            "id": "lifecycle",
            "title": "6, 9. Changes through the lifecycle and post-market monitoring",
            "fields": [
                _field("Version history", _versions(model, lifecycle)),
                _tag(tags, "predetermined_changes", "Pre-determined changes"),
                _tag(tags, "monitoring", "Post-market monitoring"),
            ],
        },
        {
            "id": "standards",
            "title": "7-8. Standards and declaration of conformity",
            "fields": [
                _tag(tags, "standards", "Harmonised standards applied"),
                _tag(tags, "declaration_of_conformity", "EU declaration of conformity"),
            ],
        },
    ]


# -- the nine points ------------------------------------------------------------------------

#: The nine points of Annex IV: (id, heading, fields in order). Field names are those of
#: :func:`annex_iv` and of the extra facts a caller adds (the documentation bundle adds
#: "Putting into service", "Datasheets", "Metrics recorded", "Controls recorded in the
#: catalog", "Changes from the previous version" and "Monitoring recorded in the catalog").
ANNEX_IV_POINTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("general_description", "1. General description of the AI system",
     ("Intended purpose", "Provider", "Version", "Software and versions", "Hardware",
      "Intended users", "Instructions for use", "Putting into service")),
    ("development_process", "2. Elements of the AI system and its development process",
     ("Methods and steps", "Design choices and parameters", "Computational resources",
      "Code version", "Training data", "Data provenance", "Data preparation",
      "Data quality checks", "Datasheets", "Assumptions and representativeness",
      "Pre-determined changes", "Validation and testing", "Cybersecurity measures")),
    ("monitoring_functioning_control",
     "3. Monitoring, functioning and control of the AI system",
     ("Metrics", "Accuracy for specific groups", "Known limitations",
      "Foreseeable unintended outcomes and risks", "Human oversight measures",
      "Recorded promotion decisions", "Inputs and outputs")),
    ("metrics_appropriateness", "4. Appropriateness of the performance metrics",
     ("Metrics recorded", "Appropriateness of the metrics")),
    ("risk_management", "5. Risk management system (Article 9)",
     ("Controls recorded in the catalog", "Risk management system")),
    ("lifecycle_changes", "6. Changes through the lifecycle",
     ("Version history", "Changes from the previous version")),
    ("standards", "7. Harmonised standards and other specifications applied",
     ("Harmonised standards applied",)),
    ("declaration_of_conformity", "8. EU declaration of conformity (Article 47)",
     ("EU declaration of conformity",)),
    ("post_market_monitoring", "9. Post-market monitoring (Article 72)",
     ("Monitoring recorded in the catalog", "Post-market monitoring")),
)  # fmt: skip
#: The tag (and answers file key) that answers each field only a person can fill.
FIELD_TAGS = {
    "Intended purpose": "intended_use",
    "Provider": "provider",
    "Intended users": "users",
    "Instructions for use": "instructions_for_use",
    "Assumptions and representativeness": "data_assumptions",
    "Pre-determined changes": "predetermined_changes",
    "Foreseeable unintended outcomes and risks": "risks",
    "Human oversight measures": "human_oversight",
    "Appropriateness of the metrics": "metrics_rationale",
    "Risk management system": "risk_management",
    "Harmonised standards applied": "standards",
    "EU declaration of conformity": "declaration_of_conformity",
    "Post-market monitoring": "monitoring",
}


def annex_iv_points(
    card: dict[str, Any], tags: Mapping[str, str], extra: Mapping[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The nine points of Annex IV, each with its fields and a status.

    ``tags`` are the answers by tag name (see :data:`FIELD_TAGS`); one that is not among the
    card's own ``tags`` is reported with ``source: "answers:<tag>"``. ``extra`` holds further
    fields by name, in the form :func:`annex_iv` returns. A point's ``status`` is ``filled``
    (every field known), ``partial`` or ``needs_human`` (no field known); an open field's value
    is ``None`` and its ``tag`` names the tag that answers it, if one does.

    Example:
        >>> card = {"model": {"name": "m", "version": 1, "uri": "models:/m/1",
        ...     "created_at": "2024-01-01", "created_by": "ana"}}
        >>> points = annex_iv_points(card, {}, {})
        >>> len(points), points[7]["status"]
        (9, 'needs_human')
    """
    fields: dict[str, dict[str, Any]] = {}
    for section in annex_iv(card, dict(tags)):
        for entry in section["fields"]:
            fields[entry["name"]] = dict(entry)
    fields.update({name: dict(entry) for name, entry in extra.items()})
    own = card.get("tags") or {}
    out = []
    for point_id, title, names in ANNEX_IV_POINTS:
        entries = []
        for name in names:
            entry = fields.get(name) or _field(name, None)
            tag = FIELD_TAGS.get(name)
            if not entry["completed"]:
                entry["value"] = None
            elif tag and entry["source"] == f"tag:{tag}" and tag not in own:
                entry["source"] = f"answers:{tag}"
            entry["tag"] = tag
            entries.append(entry)
        done = sum(1 for e in entries if e["completed"])
        status = "filled" if done == len(entries) else "partial" if done else "needs_human"
        out.append({"id": point_id, "title": title, "status": status, "fields": entries})
    return out
