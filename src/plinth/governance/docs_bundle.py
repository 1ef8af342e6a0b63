"""The documentation bundle of a model version: its model card, a datasheet of every training
table version, an EU AI Act Annex IV technical file, an index, and the changes against the
previous version's bundle, each as Markdown and as self-contained HTML.

==================================== ============================================================
file                                 content
==================================== ============================================================
``model-card.md|.html``              the model card (:mod:`plinth.registry.card`)
``datasheet-<table>@<v>.md|.html``   one per training table version (:mod:`.datasheet`)
``annex-iv.md|.html``                the nine points of Annex IV, each field filled from the
                                     catalog or a tag, or marked "Needs a human answer"
``CHANGES.md|.html``                 what differs from the previous version: the registry's
                                     comparison and a unified diff of each Markdown file
``index.html``                       links to all of them, with the counts of open questions
==================================== ============================================================

Answers only a person can give come from the version's tags (``ws.models.register(...,
tags=...)``, then its run's) and from an optional answers file (YAML)::

    annex_iv:                 # keys: the tags of plinth.registry.card.CARD_TAGS
      provider: Example Airlines Ltd, Operations Research
    datasheets:
      flights:                # table name; question ids of plinth.governance.datasheet
        distribution.license: CC0 1.0
        motivation: {purpose: Benchmarking delay prediction.}

A tag on the version wins over the answers file. Every file is written atomically; the HTML
pages have no scripts and fetch nothing, and every value from the catalog is escaped.

Example:
    >>> # write_docs(ws, "delay@champion", "model-docs/delay").annex_counts()
"""

from __future__ import annotations

import difflib
import html
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from plinth._core.clock import utcnow
from plinth._core.files import atomic_write_bytes
from plinth.catalog.models import Alert, Deployment, MonitorProfile
from plinth.errors import ConfigError, StorageError
from plinth.governance.datasheet import NEEDS_HUMAN, QUESTIONS, Datasheet, build_datasheet, inline
from plinth.registry.annex_iv import annex_iv_points
from plinth.registry.card import CARD_TAGS

if TYPE_CHECKING:
    from plinth.registry.card import ModelCard
    from plinth.workspace import Workspace

__all__ = ["DocsBundle", "load_answers", "to_html", "write_docs"]

#: What records a catalog fact that is missing, for fields no tag answers.
_RECORDED_BY = {
    "Putting into service": "no deployment of the model is recorded ('plinth deploy' records one)",
    "Accuracy for specific groups": "log run metrics named slice/<group>/<metric> to record it",
    "Hardware": "no training run with its environment is linked to the version",
    "Methods and steps": "no training run is linked to the version",
    "Training data": "no training set is linked to the version",
}
#: Registry comparison rows that always differ between versions, left out of the changes.
_TRIVIAL = {("attribute", "version"), ("attribute", "created_at")}
_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1100px;color:#1d2330;padding:0 16px}nav{font-size:13px;padding:6px 0 12px;
border-bottom:1px solid #dde2ea;margin-bottom:12px}nav a{margin-right:14px;color:#2f6fde}
h1{font-size:24px}h2{font-size:19px;margin-top:30px;border-bottom:1px solid #dde2ea;
padding-bottom:4px}h3{font-size:15px;margin-top:20px}table{border-collapse:collapse;margin:8px 0;
display:block;overflow-x:auto}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid
#eef1f5;vertical-align:top}th{background:#f6f8fb}code{background:#f3f5f8;padding:1px 4px;
border-radius:3px;font-size:13px;word-break:break-all}pre{background:#f6f8fb;padding:10px;
overflow-x:auto;border-radius:6px}pre code{background:none;word-break:normal}
"""


# -- answers ---------------------------------------------------------------------------------


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: "" if value is None else str(value)}


def load_answers(source: str | os.PathLike[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """Read and check the answers a person gives (a YAML file or a mapping).

    Returns ``{"annex_iv": {tag: text}, "datasheets": {table: {question id: text}}}``; an
    unknown key raises :class:`~plinth.errors.ConfigError` naming the keys that are allowed.

    Example:
        >>> load_answers({"datasheets": {"t": {"distribution": {"license": "CC0"}}}})
        {'annex_iv': {}, 'datasheets': {'t': {'distribution.license': 'CC0'}}}
    """
    if source is None:
        return {"annex_iv": {}, "datasheets": {}}
    where = "The answers"
    if not isinstance(source, Mapping):
        import yaml

        from plinth._core.files import read_text

        where = f"The answers file '{source}'"
        text = read_text(source, what="answers file", hint="Check the path given to --answers.")
        try:
            source = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where} is not valid YAML: {exc}.") from exc
        if not isinstance(source, Mapping):
            raise ConfigError(f"{where} must be a mapping with 'annex_iv' and "
                              "'datasheets'.")  # fmt: skip
    unknown = sorted(set(source) - {"annex_iv", "datasheets"})
    if unknown:
        raise ConfigError(f"{where} has unknown section(s): {', '.join(unknown)}.",
                          hint="Use 'annex_iv' and 'datasheets'.")  # fmt: skip
    annex = _flatten(source.get("annex_iv") or {})
    bad = sorted(set(annex) - set(CARD_TAGS))
    if bad:
        raise ConfigError(f"{where} names unknown Annex IV key(s): {', '.join(bad)}.",
                          hint=f"Use: {', '.join(CARD_TAGS)}.")  # fmt: skip
    sheets: dict[str, dict[str, str]] = {}
    for table_name, given in (source.get("datasheets") or {}).items():
        flat = _flatten(given or {})
        bad = sorted(set(flat) - set(QUESTIONS))
        if bad:
            raise ConfigError(
                f"{where} names unknown datasheet question(s) for table "
                f"'{table_name}': {', '.join(bad)}.",
                hint=f"Use: {', '.join(QUESTIONS)}.",
            )
        sheets[str(table_name)] = flat
    return {"annex_iv": annex, "datasheets": sheets}


# -- Annex IV --------------------------------------------------------------------------------


def _fact(name: str, value: str | None) -> dict[str, Any]:
    if not value:
        return {"name": name, "value": None, "completed": False, "source": None}
    return {"name": name, "value": value, "completed": True, "source": "catalog"}


def _extra_facts(
    ws: Workspace, card: dict[str, Any], sheets: list[Datasheet], changes: str | None
) -> dict[str, dict[str, Any]]:
    model = card["model"]
    with ws.catalog.session() as session:
        deployments = [
            f"deployment `{d.name}` ({d.target}, revision {d.revision}): "
            + ", ".join(
                f"{r.get('uri')} (weight {r.get('weight')})"
                for r in (d.spec or {}).get("routes", [])
            )
            for d in session.scalars(
                select(Deployment).where(Deployment.model_name == model["name"])
            )
        ]
        references = [
            f"drift reference '{inline(p.reference)}' ({p.reference_rows:,} rows)"
            for p in session.scalars(
                select(MonitorProfile).where(
                    MonitorProfile.model_name == model["name"],
                    MonitorProfile.model_version == model["version"],
                )
            )
        ]
        alerts = [
            f"{a.rule} ({a.severity}, {a.state}: {inline(a.condition)})"
            for a in session.scalars(
                select(Alert).where(Alert.model_name == model["name"]).order_by(Alert.id).limit(20)
            )
        ]
    monitoring = references + ([f"alerts on model {model['name']}: " + "; ".join(alerts)]
                               if alerts else [])  # fmt: skip
    training = card.get("training_data") or {}
    checked = [
        f"data contract on {t['table']}@{t['version']}: {t['quality']}"
        for t in training.get("tables", [])
        if t.get("quality")
    ]
    gates = (card.get("lifecycle") or {}).get("gates") or []
    if gates:
        passed = sum(1 for g in gates if g["passed"])
        checked.append(f"{len(gates)} promotion gate decision(s), {passed} passed")
    metrics = list((card.get("evaluation") or {}).get("metrics") or {})
    return {
        "Putting into service": _fact("Putting into service", "; ".join(deployments)),
        "Datasheets": _fact(
            "Datasheets",
            "; ".join(
                f"[{s.ref}]({s.filename}.md) ({s.counts()['answered']} of {len(s.answers)} "
                "questions answered from the catalog)"
                for s in sheets
            ),
        ),
        "Metrics recorded": _fact("Metrics recorded", ", ".join(metrics)),
        "Controls recorded in the catalog": _fact(
            "Controls recorded in the catalog", "; ".join(checked)
        ),
        "Changes from the previous version": _fact("Changes from the previous version", changes),
        "Monitoring recorded in the catalog": _fact(
            "Monitoring recorded in the catalog", "; ".join(monitoring)
        ),
    }


_STATUS = {
    "filled": "filled",
    "partial": "partly filled; needs a human answer",
    "needs_human": NEEDS_HUMAN.lower(),
}


def _annex_markdown(card: dict[str, Any], points: list[dict[str, Any]]) -> str:
    model = card["model"]
    lines = [
        f"# EU AI Act Annex IV technical documentation: {model['name']} version {model['version']}",
        "",
        f"Technical documentation of `{model['uri']}` under Annex IV of Regulation (EU) "
        "2024/1689, one heading per point of the Annex. Facts come from the Plinth catalog; "
        f'what only the provider can state is marked "{NEEDS_HUMAN}" with the tag that '
        "answers it. The catalog records facts; it does not judge risk or conformity.",
        "",
        "| point | status | fields known |",
        "|---|---|---|",
    ]
    for point in points:
        done = sum(1 for f in point["fields"] if f["completed"])
        lines.append(
            f"| {point['title']} | {_STATUS[point['status']]} | {done} of {len(point['fields'])} |"
        )
    for point in points:
        lines += ["", f"## {point['title']}", ""]
        for entry in point["fields"]:
            if entry["completed"]:
                source = entry["source"] or "catalog"
                where = f"tag `{source[4:]}`" if source.startswith("tag:") else (
                    f"answers file `annex_iv.{source[8:]}`" if source.startswith("answers:")
                    else source
                )  # fmt: skip
                lines.append(f"- **{entry['name']}:** {inline(entry['value'])} _({where})_")
            elif entry["tag"]:
                lines.append(
                    f"- **{entry['name']}:** **{NEEDS_HUMAN}.** Give it as "
                    f"`annex_iv.{entry['tag']}` in the answers file, or as the tag "
                    f"`{entry['tag']}` when registering a version."
                )
            else:
                why = _RECORDED_BY.get(entry["name"], "it is not recorded in the catalog")
                lines.append(f"- **{entry['name']}:** **{NEEDS_HUMAN}.** Not recorded: {why}.")
    return "\n".join(lines) + "\n"


# -- gathering -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Documents:
    card: ModelCard
    sheets: list[Datasheet]
    points: list[dict[str, Any]]
    markdown: dict[str, str]


def _changes_field(ws: Workspace, uri: str, previous: str | None) -> str:
    if previous is None:
        return "This is the first version of the model; there is no earlier version to compare."
    diff = ws.models.diff(previous, uri)
    rows = [
        f"{row.section} {row.key}: {_plain(row.a)} → {_plain(row.b)}"
        for row in diff.rows
        if row.differs and (row.section, row.key) not in _TRIVIAL
    ]
    return f"against {previous}: " + ("; ".join(rows) if rows else "no recorded difference")


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if hasattr(value, "isoformat"):
        return str(value.isoformat(timespec="seconds"))
    return inline(value)


def _previous(ws: Workspace, name: str, version: int) -> int | None:
    earlier = [v.version for v in ws.models.versions(name) if v.version < version]
    return max(earlier) if earlier else None


def _documents(ws: Workspace, uri: str, answers: dict[str, Any]) -> _Documents:
    card = ws.models.card(uri)
    data = card.to_dict()
    model = data["model"]
    previous = _previous(ws, model["name"], model["version"])
    sheets = [
        build_datasheet(ws, t["table"], int(t["version"]), answers["datasheets"].get(t["table"]))
        for t in (data.get("training_data") or {}).get("tables", [])
    ]
    changes = _changes_field(
        ws, model["uri"], f"models:/{model['name']}/{previous}" if previous is not None else None
    )
    tags = {**answers["annex_iv"], **(data.get("tags") or {})}
    points = annex_iv_points(data, tags, _extra_facts(ws, data, sheets, changes))
    links = ["[Annex IV technical documentation](annex-iv.md)"] + [
        f"[datasheet of {s.ref}]({s.filename}.md)" for s in sheets
    ]
    card_md = card.markdown(annex=False) + (
        "\n## Further documentation\n\n" + "\n".join(f"- {link}" for link in links) + "\n"
    )
    markdown = {"model-card.md": card_md, "annex-iv.md": _annex_markdown(data, points)}
    markdown.update({f"{s.filename}.md": s.markdown() for s in sheets})
    return _Documents(card, sheets, points, markdown)


# -- changes ---------------------------------------------------------------------------------


def _pair_key(filename: str) -> str:
    """Datasheets of the same table pair up across versions (``datasheet-obs@0`` and ``@1``)."""
    return filename.rpartition("@")[0] if filename.startswith("datasheet-") else filename


def _fence(text: str) -> str:
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def _changes_markdown(
    ws: Workspace, current: _Documents, previous: _Documents | None, uri_of_previous: str | None
) -> str:
    model = current.card.to_dict()["model"]
    title = f"# Changes: {model['name']} version {model['version']}"
    if previous is None or uri_of_previous is None:
        return (f"{title}\n\nVersion {model['version']} is the first version of "
                f"{model['name']}; there is nothing to compare against.\n")  # fmt: skip
    old_version = previous.card.version
    lines = [title, "", f"Against version {old_version} (`{uri_of_previous}`).", "",
             "## Registry comparison", ""]  # fmt: skip
    diff = ws.models.diff(uri_of_previous, model["uri"])
    rows = [r for r in diff.rows if r.differs and (r.section, r.key) not in _TRIVIAL]
    if rows:
        lines += [f"| section | key | version {old_version} | version {model['version']} |",
                  "|---|---|---|---|"]  # fmt: skip
        lines += [
            "| "
            + " | ".join(_plain(v).replace("|", "\\|") for v in (r.section, r.key, r.a, r.b))
            + " |"
            for r in rows
        ]
    else:
        lines.append("The registry records no difference besides the version itself.")
    before = {_pair_key(name): (name, text) for name, text in previous.markdown.items()}
    for name, text in current.markdown.items():
        old_name, old_text = before.pop(_pair_key(name), (None, None))
        lines += ["", f"## {name}", ""]
        if old_text is None:
            lines.append(f"New in version {model['version']}.")
            continue
        delta = list(
            difflib.unified_diff(
                old_text.splitlines(), text.splitlines(),
                f"v{old_version}/{old_name}", f"v{model['version']}/{name}", lineterm="", n=2,
            )
        )  # fmt: skip
        if not delta:
            lines.append(f"Unchanged from {old_name}.")
            continue
        body = "\n".join(delta)
        fence = _fence(body)
        lines += [f"Against version {old_version}'s `{old_name}`:", "", f"{fence}diff", body, fence]
    for old_name, _ in before.values():
        lines += ["", f"## {old_name}", "", f"Only in version {old_version}."]
    return "\n".join(lines) + "\n"


# -- HTML ------------------------------------------------------------------------------------


def to_html(markdown: str, title: str, nav: list[tuple[str, str]] | None = None) -> str:
    """A self-contained HTML page of a Markdown document: no scripts, nothing fetched.

    Raw HTML in the Markdown is escaped, never passed through; relative links to ``.md`` files
    point at their ``.html`` pages (a link written ``./name.md`` keeps pointing at the file).

    Example:
        >>> "&lt;b&gt;" in to_html("# Hi <b>", "Hi")
        True
    """
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = parser.parse(markdown)
    for token in tokens:
        for child in token.children or []:
            href = child.attrGet("href") if child.type == "link_open" else None
            if (
                isinstance(href, str)
                and href.endswith(".md")
                and not href.startswith(("./", "/"))
                and ":" not in href
            ):
                child.attrSet("href", href[:-3] + ".html")
    body = parser.renderer.render(tokens, parser.options, {})
    links = " ".join(f"<a href='{html.escape(h, quote=True)}'>{html.escape(t)}</a>"
                     for t, h in nav or [])  # fmt: skip
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<nav>{links}</nav>\n{body}</body></html>\n"
    )


# -- the bundle ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocsBundle:
    """What :func:`write_docs` wrote: the files, the datasheets and the Annex IV points.

    Example:
        >>> b = DocsBundle("models:/m/1", "m", 1, Path("out"), [], [], [], None)
        >>> b.annex_counts()["sections"]
        0
    """

    uri: str
    name: str
    version: int
    folder: Path
    files: list[Path]
    datasheets: list[dict[str, Any]]
    annex_iv: list[dict[str, Any]]
    previous_version: int | None
    generated_at: str = field(default="")

    def annex_counts(self) -> dict[str, int]:
        """Annex IV sections filled from the catalog and tags, and those needing a human
        answer (partly filled ones included); and the same for single fields."""
        fields = [f for p in self.annex_iv for f in p["fields"]]
        filled = sum(1 for p in self.annex_iv if p["status"] == "filled")
        return {
            "sections": len(self.annex_iv),
            "filled": filled,
            "needs_human": len(self.annex_iv) - filled,
            "partial": sum(1 for p in self.annex_iv if p["status"] == "partial"),
            "fields": len(fields),
            "fields_filled": sum(1 for f in fields if f["completed"]),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: the model, the folder, the files, and the counts."""
        return {
            "uri": self.uri,
            "name": self.name,
            "version": self.version,
            "folder": str(self.folder),
            "files": [str(p) for p in self.files],
            "previous_version": self.previous_version,
            "annex_iv": self.annex_counts(),
            "annex_iv_sections": [
                {"id": p["id"], "title": p["title"], "status": p["status"]} for p in self.annex_iv
            ],
            "datasheets": self.datasheets,
            "generated_at": self.generated_at,
        }


def _index(
    pages: list[tuple[str, tuple[str, str]]], docs: _Documents, counts: dict[str, int], when: str
) -> str:
    model = docs.card.to_dict()["model"]
    lines = [
        f"# Documentation of {model['name']} version {model['version']}",
        "",
        f"`{model['uri']}`, generated {when} from the catalog. Annex IV: {counts['filled']} of "
        f"{counts['sections']} sections filled, {counts['needs_human']} need a human answer "
        f"({counts['fields_filled']} of {counts['fields']} fields known).",
        "",
        "| document | Markdown | about |",
        "|---|---|---|",
    ]
    lines += [
        f"| [{title}]({name}) | [{name}](./{name}) | {inline(about)} |"
        for name, (title, about) in pages
    ]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    try:
        atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as exc:
        raise StorageError(
            f"Cannot write '{path}': {exc.strerror or exc}.",
            hint="Choose a folder you can write to with --output.",
        ) from exc


def write_docs(
    ws: Workspace,
    uri: str,
    out_dir: str | os.PathLike[str],
    *,
    answers: str | os.PathLike[str] | Mapping[str, Any] | None = None,
) -> DocsBundle:
    """Write the documentation bundle of a model version to ``out_dir`` (see the module
    docstring), each file atomically; other files in the folder are left alone.

    Example:
        >>> # bundle = write_docs(ws, "delay@champion", "model-docs/delay")
        >>> # bundle.annex_counts()["needs_human"]
    """
    given = load_answers(answers)
    current = _documents(ws, uri, given)
    model = current.card.to_dict()["model"]
    prev_version = _previous(ws, model["name"], model["version"])
    prev_uri = f"models:/{model['name']}/{prev_version}" if prev_version is not None else None
    previous = _documents(ws, prev_uri, given) if prev_uri else None
    pages = dict(current.markdown)
    pages["CHANGES.md"] = _changes_markdown(ws, current, previous, prev_uri)
    titles = {
        "model-card.md": ("Model card", "what the model is, its data, metrics and limitations"),
        "annex-iv.md": (
            "Annex IV technical documentation",
            "the nine points of EU AI Act Annex IV",
        ),
        "CHANGES.md": ("Changes", "differences from the previous version's documentation"),
    }
    for sheet in current.sheets:
        counts = sheet.counts()
        titles[f"{sheet.filename}.md"] = (
            f"Datasheet of {sheet.ref}",
            f"{counts['answered']} questions answered, {counts['needs_human']} need a human answer",
        )
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"'{folder}' is a file, not a folder.", hint="Give a folder to write to.")
    label = f"{model['name']} version {model['version']}"
    nav = [("Index", "index.html")] + [(titles[n][0], n[:-3] + ".html") for n in pages]
    written: list[Path] = []
    for name, text in pages.items():
        html_page = to_html(text, f"{titles[name][0]}: {label}", nav)
        for path, content in ((folder / name, text), (folder / (name[:-3] + ".html"), html_page)):
            _write(path, content)
            written.append(path)
    when = utcnow().isoformat(timespec="seconds")
    bundle = DocsBundle(
        uri=model["uri"],
        name=model["name"],
        version=int(model["version"]),
        folder=folder,
        files=written,
        datasheets=[
            {"ref": s.ref, "file": f"{s.filename}.md", **s.counts()} for s in current.sheets
        ],
        annex_iv=current.points,
        previous_version=prev_version,
        generated_at=when,
    )
    index = _index([(n, titles[n]) for n in pages], current, bundle.annex_counts(), when)
    index_path = folder / "index.html"
    _write(index_path, to_html(index, f"Documentation of {label}", nav))
    written.append(index_path)
    return bundle
