"""Markdown rendering of a model card's data (see :mod:`plinth.registry.card`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from plinth.quality.privacy import WITHHELD
from plinth.registry.annex_iv import TO_COMPLETE


def cell(value: Any) -> str:
    """A value as a Markdown table cell: numbers shortened, pipes escaped, ``-`` for none.

    Example:
        >>> cell(0.123456), cell(336776), cell("a|b"), cell(None)
        ('0.1235', '336,776', 'a\\\\|b', '-')
    """
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A Markdown table.

    Example:
        >>> table(["a"], [[1]])
        ['| a |', '|---|', '| 1 |']
    """
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _percent(value: Any) -> str:
    return "-" if value is None else f"{value:.1%}"


def _details(data: dict[str, Any]) -> list[str]:
    m = data["model"]
    code = m.get("code_commit") or None
    if code and m.get("code_dirty"):
        code += " (uncommitted changes)"
    rows = [
        ("name", m["name"]),
        ("version", m["version"]),
        ("URI", f"`{m['uri']}`"),
        ("flavor", m["flavor"]),
        ("library", f"{m.get('library') or '-'} {m.get('library_version') or ''}".strip()),
        ("class", m.get("class")),
        ("created", f"{m['created_at']} by {m['created_by']}"),
        ("run", m.get("run_id")),
        ("code commit", code),
        ("aliases", ", ".join(m.get("aliases") or []) or None),
        ("manifest", f"sha256:{m['manifest_digest']}"),
    ]
    out = ["## Model details", "", *table(["field", "value"], rows)]
    signature = m.get("signature")
    if signature:
        out += ["", "### Signature", ""]
        inputs = signature["inputs"]
        if inputs["type"] == "tensor":
            out.append(f"Input: tensor `{inputs['dtype']}` of shape `{inputs['shape']}`.")
        else:
            out += table(
                ["input column", "type", "dtype"],
                [(c["name"], c["type"], c["dtype"]) for c in inputs["columns"]],
            )
        outputs = signature.get("outputs")
        if outputs and outputs["type"] == "tensor":
            out += ["", f"Output: tensor `{outputs['dtype']}` of shape `{outputs['shape']}`."]
        elif outputs:
            out += ["", "Output columns: " + ", ".join(c["name"] for c in outputs["columns"])]
    return out


def _intended(data: dict[str, Any]) -> list[str]:
    use = data["intended_use"]
    out = ["## Intended use", ""]
    for label, key in (
        ("Description", "description"),
        ("Model", "model_description"),
        ("Intended use", "intended_use"),
        ("Out of scope", "out_of_scope"),
        ("Users", "users"),
    ):
        if use.get(key):
            out.append(f"- **{label}:** {use[key]}")
    if len(out) == 2:
        out.append(f"_{TO_COMPLETE}_ (set the `intended_use` tag or a description)")
    return out


def _training(data: dict[str, Any]) -> list[str]:
    training = data["training_data"]
    out = ["## Training data", ""]
    ts = training.get("training_set")
    if not ts:
        return [*out, "No training set is linked to this version."]
    if ts.get("missing"):
        return [*out, f"Training set `{ts['id']}` is no longer in the catalog."]
    out.append(
        f"Training set `{ts['id']}`: {cell(ts['row_count'])} rows, built {ts['created_at']}."
    )
    service = training.get("feature_service")
    if service:
        out.append(f"Feature service `{service['name']}` version {service['version']}.")
    out += [
        "",
        *table(
            ["table", "version", "rows", "created", "role", "quality"],
            [
                (
                    t["table"],
                    t["version"],
                    t["row_count"],
                    t["created_at"],
                    t["role"],
                    t.get("quality"),
                )
                for t in training["tables"]
            ],
        ),
    ]
    if training.get("feature_views"):
        out += [
            "",
            "Feature views: "
            + ", ".join(f"`{n}` v{v}" for n, v in training["feature_views"].items())
            + ".",
        ]
    if training.get("features"):
        out.append("Features: " + ", ".join(f"`{f}`" for f in training["features"]) + ".")
    for column, (low, high) in (training.get("time_range") or {}).items():
        out.append(f"Time range of `{column}`: {low} to {high}.")
    for t in training["tables"]:
        profile = t.get("profile")
        if not profile:
            continue
        out += [
            "",
            f"### Profile of {t['table']}@{t['version']}",
            "",
            f"{cell(profile['row_count'])} rows, {profile['column_count']} columns"
            + (
                " (first columns shown)."
                if profile["column_count"] > len(profile["columns"])
                else "."
            ),
            "",
            *table(
                ["column", "kind", "missing", "distinct", "min", "max", "mean"],
                [
                    (
                        c["name"],
                        c["kind"],
                        _percent(c["null_fraction"]),
                        c["distinct"],
                        *(
                            (WITHHELD, None, None)
                            if c.get("pii")
                            else (c["min"], c["max"], c["mean"])
                        ),
                    )
                    for c in profile["columns"]
                ],
            ),
        ]
    return out


def _evaluation(data: dict[str, Any]) -> list[str]:
    evaluation = data["evaluation"]
    out = ["## Evaluation", ""]
    metrics = evaluation.get("metrics") or {}
    if metrics:
        out += table(["metric", "value"], list(metrics.items()))
    else:
        out.append("No metrics were recorded.")
    slices = evaluation.get("slices") or {}
    if slices:
        names = list(dict.fromkeys(k for values in slices.values() for k in values))
        out += [
            "",
            "### Slices",
            "",
            *table(
                ["slice", *names],
                [(s, *(values.get(n) for n in names)) for s, values in slices.items()],
            ),
        ]
    return out


def _lineage(data: dict[str, Any]) -> list[str]:
    lineage = data["lineage"]
    out = ["## Lineage", ""]
    if not lineage["upstream"] and not lineage["downstream"]:
        return [*out, "No lineage was recorded."]
    edges = lineage["upstream"] + lineage["downstream"]
    return out + table(
        ["source", "relation", "target"],
        [(f"`{e['source']}`", e["relation"], f"`{e['target']}`") for e in edges],
    )


def _lifecycle(data: dict[str, Any]) -> list[str]:
    lifecycle = data["lifecycle"]
    events = lifecycle.get("alias_events") or []
    gates = lifecycle.get("gates") or []
    out = ["## Aliases and promotion", ""]
    if not events and not gates:
        return [*out, "This version has not held an alias and no gate has judged it."]
    if events:
        out += table(
            ["at", "alias", "action", "version", "previous", "by", "reason"],
            [
                (
                    e["at"],
                    e["alias"],
                    e["action"],
                    e["version"],
                    e["previous_version"],
                    e["by"],
                    e["reason"],
                )
                for e in events
            ],
        )
    if gates:
        out += [
            "",
            *table(
                ["decided", "passed", "champion", "by", "reasons"],
                [
                    (
                        g["decided_at"],
                        g["passed"],
                        g["champion_version"],
                        g["decided_by"],
                        "; ".join(str(r) for r in g["reasons"]),
                    )
                    for g in gates
                ],
            ),
        ]
    return out


def _annex(data: dict[str, Any]) -> list[str]:
    out = [
        "## EU AI Act Annex IV technical documentation",
        "",
        "Fields are filled from the catalog and from the version's tags; the rest is marked "
        f'"{TO_COMPLETE}"',
    ]
    for section in data["annex_iv"]:
        out += ["", f"### {section['title']}", ""]
        for field in section["fields"]:
            value = field["value"] if field["completed"] else f"_{TO_COMPLETE}_"
            out.append(f"- **{field['name']}:** {value}")
    return out


def render(data: dict[str, Any], *, annex: bool = True) -> str:
    """The whole card as Markdown; ``annex=False`` leaves out the Annex IV section (for
    documents that carry it in a file of its own).

    Example:
        >>> # render(ws.models.card("delay:3").to_dict())
    """
    model = data["model"]
    parts = [
        [f"# Model card: {model['name']} version {model['version']}"],
        _details(data),
        _intended(data),
        _training(data),
        _evaluation(data),
        ["## Limitations", "", *(f"- {item}" for item in data["limitations"])]
        if data["limitations"]
        else ["## Limitations", "", "None recorded."],
        _lineage(data),
        _lifecycle(data),
    ]
    if annex:
        parts.append(_annex(data))
    return "\n\n".join("\n".join(part) for part in parts) + "\n"
