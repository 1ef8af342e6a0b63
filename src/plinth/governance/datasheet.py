"""Datasheets for the table versions a model was trained on, in the sections of Gebru et al.,
*Datasheets for Datasets* (2021): motivation, composition, collection process, preprocessing,
uses, distribution and maintenance.

Each question is answered from the catalog where the catalog knows the answer: row and column
counts, column types and statistics from the stored profile, missing values, the data contract
and its recorded results (quarantined rows included), the source files with their SHA-256 and
the ingests that read them, the table's versions, and the feature views, training sets and
models that use it. A question the catalog cannot answer (purpose, consent, license, owner ...)
is marked :data:`NEEDS_HUMAN`, never guessed; a person answers it in the answers file of
``plinth docs`` under ``datasheets: {<table>: {<question id>: ...}}`` (see :data:`QUESTIONS`).

Example:
    >>> # print(build_datasheet(ws, "flights", 0).markdown())
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from plinth.catalog.models import FeatureDefinition, Ingest, LakeTable, LineageEdge, ModelVersion
from plinth.errors import NotFoundError, PlinthError
from plinth.registry.card_markdown import table

if TYPE_CHECKING:
    from plinth.lake.records import TableInfo, VersionInfo
    from plinth.quality.contracts import RowCheck
    from plinth.quality.service import AppliedContract
    from plinth.workspace import Workspace

__all__ = ["NEEDS_HUMAN", "QUESTIONS", "SECTIONS", "Answer", "Datasheet", "build_datasheet"]

#: The mark of a question only a person can answer.
NEEDS_HUMAN = "Needs a human answer"
#: The datasheet's sections, in order: (id, title).
SECTIONS = (
    ("motivation", "Motivation"),
    ("composition", "Composition"),
    ("collection", "Collection process"),
    ("preprocessing", "Preprocessing, cleaning and labeling"),
    ("uses", "Uses"),
    ("distribution", "Distribution"),
    ("maintenance", "Maintenance"),
)
#: Every question by id (``<section>.<key>``); the id is the key of a human answer.
QUESTIONS: dict[str, str] = {
    "motivation.purpose": "For what purpose was the dataset created?",
    "motivation.creators": "Who created the table in this catalog, and when?",
    "motivation.funding": "On behalf of which entity was the data created, and who funded it?",
    "composition.instances": "What do the instances represent?",
    "composition.count": "How many instances and columns are there?",
    "composition.columns": "What data does each instance consist of?",
    "composition.missing": "Is any information missing from individual instances?",
    "composition.errors": "Are there errors, sources of noise or redundancies?",
    "composition.sample": "Is it a sample of a larger set, and is the sample representative?",
    "composition.label": "Is there a label or target associated with each instance?",
    "composition.sensitive": "Does it identify people or sub-populations, or contain "
    "confidential or sensitive data?",
    "collection.acquired": "How was the data acquired?",
    "collection.ingests": "Who ingested it into the lake, and when?",
    "collection.timeframe": "Over what timeframe was the data collected?",
    "collection.mechanism": "What mechanisms or procedures collected the data (sensors, "
    "software, manual entry)?",
    "collection.consent": "Were the people concerned notified, and did they consent? Was an "
    "ethical review conducted?",
    "preprocessing.checks": "What checks must the data pass before it is stored?",
    "preprocessing.results": "What did the recorded checks find?",
    "preprocessing.quarantine": "Were instances set aside?",
    "preprocessing.raw": "Is the raw data kept, and can earlier versions be read?",
    "preprocessing.labeling": "How were labels produced, and what other cleaning or labeling "
    "was done before the data reached the lake?",
    "uses.feature_views": "Which feature views read the table?",
    "uses.training_sets": "Which training sets were built from this version?",
    "uses.models": "Which models were trained on it?",
    "uses.unsuitable": "Are there tasks for which the dataset should not be used?",
    "uses.impact": "Could its composition or collection lead to unfair treatment of people or "
    "other harms in future uses?",
    "distribution.location": "Where is it stored, and how is it read?",
    "distribution.license": "Under what license or terms of use may it be used?",
    "distribution.third_parties": "Will it be shared outside the organization, and have third "
    "parties imposed restrictions on it?",
    "maintenance.versions": "Is it updated, and which versions exist?",
    "maintenance.freshness": "How fresh is it expected to be?",
    "maintenance.owner": "Who maintains the dataset, and how can they be contacted?",
    "maintenance.retention": "Are there limits on how long data about people may be kept?",
}
#: Rows of long lists (versions, ingests, users) shown at most.
LIST_LIMIT = 30


def inline(value: Any) -> str:
    """Free text as one Markdown line: whitespace and line breaks collapsed.

    Example:
        >>> inline("two\\n# lines")
        'two # lines'
    """
    return " ".join(str(value).split())


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value)


@dataclass(frozen=True)
class Answer:
    """One question of a datasheet: its answer in Markdown (``None``: needs a human answer)
    and where the answer came from."""

    id: str
    question: str
    text: str | None
    source: str | None

    @property
    def answered(self) -> bool:
        """Whether the question has an answer."""
        return self.text is not None


@dataclass(frozen=True)
class Datasheet:
    """The datasheet of one table version.

    Example:
        >>> sheet = Datasheet("flights", 0, [Answer("uses.models", "?", None, None)])
        >>> sheet.ref, sheet.filename, sheet.counts()
        ('flights@0', 'datasheet-flights@0', {'answered': 0, 'needs_human': 1})
    """

    table: str
    version: int
    answers: list[Answer] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """The table version's reference, ``table@version``."""
        return f"{self.table}@{self.version}"

    @property
    def filename(self) -> str:
        """The bundle's file name, without extension: ``datasheet-<table>@<version>``."""
        safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in self.table)
        return f"datasheet-{safe}@{self.version}"

    def counts(self) -> dict[str, int]:
        """How many questions are answered, and how many need a human answer."""
        answered = sum(1 for a in self.answers if a.answered)
        return {"answered": answered, "needs_human": len(self.answers) - answered}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: the table version, counts, and each answer."""
        answers = [{"id": a.id, "question": a.question, "answer": a.text, "source": a.source}
                   for a in self.answers]  # fmt: skip
        return {"table": self.table, "version": self.version, **self.counts(), "answers": answers}

    def markdown(self) -> str:
        """The datasheet as a Markdown document.

        Example:
            >>> Datasheet("t", 1, []).markdown().splitlines()[0]
            '# Datasheet: t@1'
        """
        counts = self.counts()
        lines = [
            f"# Datasheet: {self.ref}",
            "",
            f"Table `{self.table}`, version {self.version}, described in the sections of Gebru "
            "et al., *Datasheets for Datasets* (2021). Answers come from the catalog; "
            f"{counts['answered']} of {len(self.answers)} questions are answered there and "
            f'{counts["needs_human"]} are marked "{NEEDS_HUMAN}". Answer those in the answers '
            f"file under `datasheets: {{{self.table}: {{<question id>: ...}}}}`.",
        ]
        for number, (section, title) in enumerate(SECTIONS, start=1):
            lines += ["", f"## {number}. {title}"]
            for answer in self.answers:
                if answer.id.split(".")[0] != section:
                    continue
                lines += ["", f"### {answer.question}", ""]
                if answer.text is None:
                    lines.append(f"**{NEEDS_HUMAN}** (question id `{answer.id}`).")
                else:
                    lines += [answer.text, "", f"_Source: {answer.source}._"]
        return "\n".join(lines) + "\n"


# -- facts from the catalog ------------------------------------------------------------------


@dataclass
class _Facts:
    table: str
    version: int
    info: VersionInfo
    table_info: TableInfo
    history: list[VersionInfo]
    description: str | None = None
    profile: dict[str, Any] | None = None
    contract: AppliedContract | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    ingests: list[tuple[Any, ...]] = field(default_factory=list)
    views: list[tuple[str, int, str]] = field(default_factory=list)
    training_sets: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    checks: list[RowCheck] = field(default_factory=list)
    pii: dict[str, str] = field(default_factory=dict)


def _gather(ws: Workspace, name: str, version: int) -> _Facts | None:
    from plinth.quality.profiles import get_profile, profile_version

    try:
        history = [v for v in ws.lake.history(name) if v.version <= version]
        facts = _Facts(name, version, ws.lake.version(name, version), ws.lake.table(name), history)
    except NotFoundError:
        return None
    try:  # a missing profile is computed (and stored) on demand, as 'plinth profile' does
        facts.profile = profile_version(ws.lake, name, version)
    except PlinthError:
        facts.profile = get_profile(ws.catalog, name, version)
    facts.results = [
        r for r in ws.quality.results(name, limit=200) if r["table_version"] == version
    ]
    used = facts.results[0]["contract_version"] if facts.results else None
    facts.contract = ws.quality.contract(name, used)
    if facts.contract is not None:
        with contextlib.suppress(PlinthError):
            facts.checks = facts.contract.contract.row_checks()
        pii = getattr(facts.contract.contract, "pii_columns", None)
        facts.pii = dict(pii()) if callable(pii) else {}
    node = f"{name}@{version}"
    with ws.catalog.session() as session:
        facts.description = session.scalar(
            select(LakeTable.description).where(LakeTable.name == name)
        )
        committed = (
            Ingest.table_name == name,
            Ingest.status == "committed",
            Ingest.version <= version,
        )
        facts.ingests = [
            (r.id, r.version, r.mode, _when(r.started_at), _when(r.finished_at or "-"),
             r.created_by, r.host)
            for r in session.scalars(
                select(Ingest).where(*committed).order_by(Ingest.started_at.desc()).limit(LIST_LIMIT)
            )
        ]  # fmt: skip
        for row in session.scalars(
            select(FeatureDefinition)
            .where(FeatureDefinition.kind == "view")
            .order_by(FeatureDefinition.name, FeatureDefinition.version)
        ):
            if (row.spec or {}).get("source") == name:
                facts.views.append((row.name, row.version, (row.spec or {}).get("description", "")))
        facts.training_sets = list(
            session.scalars(
                select(LineageEdge.target_id)
                .where(
                    LineageEdge.source_kind == "table_version",
                    LineageEdge.source_id == node,
                    LineageEdge.target_kind == "training_set",
                )
                .order_by(LineageEdge.id)
                .distinct()
            )
        )
        if facts.training_sets:
            facts.models = [
                f"models:/{model}/{number}"
                for model, number in session.execute(
                    select(ModelVersion.model_name, ModelVersion.version)
                    .where(ModelVersion.training_set_id.in_(facts.training_sets))
                    .order_by(ModelVersion.model_name, ModelVersion.version)
                )
            ]
    return facts


# -- answers ---------------------------------------------------------------------------------


def _percent(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.1%" if 0 < value < 0.0005 else f"{value:.1%}"


def _top(entry: dict[str, Any]) -> str | None:
    from plinth.quality.drift import is_high_cardinality

    top = entry.get("top") or []
    if not top:
        return None
    if is_high_cardinality(entry):
        return "(mostly unique values, not shown)"
    return ", ".join(f"{inline(t['value'])} ({t['count']:,})" for t in top[:3])


def _columns(facts: _Facts) -> str:
    from plinth.quality.privacy import WITHHELD, is_withheld

    stats = (facts.profile or {}).get("columns") or {}
    rows = []
    for column in facts.info.schema:
        entry = stats.get(column["name"]) or {}
        missing = _percent(entry.get("null_fraction")) if entry else None
        values = [entry.get(k) for k in ("min", "max", "mean", "std")] + [_top(entry)]
        if is_withheld(entry):  # personal data: the profile holds counts only, never values
            values = [None] * 4 + [WITHHELD]
        rows.append((f"`{column['name']}`", column["type"], entry.get("kind"), missing,
                     entry.get("distinct"), *values))  # fmt: skip
    headers = ["column", "type", "kind", "missing", "distinct", "min", "max", "mean", "std", "top"]
    text = "\n".join(table(headers, rows))
    if facts.profile is None:
        text += "\n\nNo profile is stored for this version, so only the schema is shown."
    return text


def _missing(facts: _Facts) -> str | None:
    if facts.profile is None:
        return None
    rows = [(f"`{n}`", e["nulls"], _percent(e.get("null_fraction")))
            for n, e in facts.profile["columns"].items() if e.get("nulls")]  # fmt: skip
    if not rows:
        return "No column has missing values in this version."
    return "\n".join(table(["column", "missing values", "share"], rows))


def _errors(facts: _Facts) -> str | None:
    if not facts.results:
        return None
    latest = facts.results[0]
    checks = latest.get("checks") or {}
    failing = checks.get("rows") or {}
    severities = {c.name: c.severity for c in facts.checks}
    lines = [
        f"The latest quality result ({latest['kind']} at {_when(latest['created_at'])}, contract "
        f"v{latest['contract_version']}) counted {latest['rows_warned']:,} row(s) with warnings "
        f"and {latest['rows_quarantined']:,} quarantined out of {latest['rows_checked']:,}."
    ]
    if failing:
        rows = [(f"`{k}`", severities.get(k), v) for k, v in sorted(failing.items())]
        lines += ["", *table(["check", "severity", "failing rows"], rows)]
    for name, outcome in (checks.get("table") or {}).items():
        if not outcome.get("passed", True):
            lines += ["", f"- Table check `{name}` failed: {inline(outcome.get('message', ''))}"]
    non_finite = [
        f"`{n}` ({e['non_finite']:,})"
        for n, e in ((facts.profile or {}).get("columns") or {}).items()
        if e.get("non_finite")
    ]
    if non_finite:
        lines += ["", "Columns with NaN or infinite values: " + ", ".join(non_finite) + "."]
    return "\n".join(lines)


def _source(version: VersionInfo) -> list[tuple[Any, ...]]:
    source = version.source or {}
    kind = source.get("kind")
    if kind == "files":
        files = source.get("files") or [{"path": p} for p in source.get("paths") or []]
        return [(version.version, f"{source.get('format', 'file')} file", inline(f.get("path", "")),
                 f"`sha256:{f['sha256']}`" if f.get("sha256") else None, f.get("bytes"))
                for f in files]  # fmt: skip
    if kind == "sql":
        where = (
            f"query against {inline(source.get('url', ''))}: `{inline(source.get('query', ''))}`"
        )
        digest = f"`sha256:{source['sha256']}`" if source.get("sha256") else None
        return [(version.version, "SQL query", where, digest, None)]
    if kind == "memory":
        what = f"in-memory {source.get('type', 'data')} passed to ws.lake.ingest"
        return [(version.version, "in-memory data", what, None, source.get("rows"))]
    return [(version.version, version.operation, inline(kind or "no source recorded"), None, None)]


def _acquired(facts: _Facts) -> str:
    rows = [row for v in facts.history[-LIST_LIMIT:] for row in _source(v)]
    headers = ["version", "kind", "source", "content hash", "bytes or rows"]
    intro = "Each version's source, as recorded by the ingest that wrote it:\n\n"
    return intro + "\n".join(table(headers, rows))


def _ingests(facts: _Facts) -> str:
    lines = [
        f"Version {facts.info.version} was written by {facts.info.created_by} at "
        f"{_when(facts.info.created_at)} ({facts.info.operation})."
    ]
    if facts.ingests:
        lines += [
            "",
            *table(
                ["ingest", "version", "mode", "started", "finished", "by", "host"], facts.ingests
            ),
        ]  # fmt: skip
    return "\n".join(lines)


def _timeframe(facts: _Facts) -> str | None:
    from plinth.quality.privacy import is_withheld

    columns = ((facts.profile or {}).get("columns") or {}).items()
    ranges = [
        f"`{name}` from {e['min']} to {e['max']}"
        for name, e in columns
        if e.get("kind") == "temporal" and e.get("min") is not None and not is_withheld(e)
    ]
    return "Time columns of this version: " + "; ".join(ranges) + "." if ranges else None


def _checks(facts: _Facts) -> str:
    if facts.contract is None:
        return (
            f"No data contract is recorded for table `{facts.table}`, so no checks ran when "
            "its rows were stored."
        )
    contract = facts.contract.contract
    lines = [f"Data contract version {facts.contract.version} of table `{facts.table}`."]
    checks = facts.checks
    if checks:
        lines += [
            "",
            *table(
                ["row check", "severity", "rule (SQL a row must satisfy)"],
                [(f"`{c.name}`", c.severity, f"`{inline(c.predicate)}`") for c in checks],
            ),
        ]
    rules = []
    if contract.row_count is not None:
        bounds = contract.row_count
        upper = "-" if bounds.max is None else f"{bounds.max:,}"
        rules.append(f"row count between {bounds.min or 0:,} and {upper} ({bounds.severity})")
    if contract.freshness is not None:
        fresh = contract.freshness
        rules.append(f"newest `{fresh.column}` at most {fresh.max_age} old ({fresh.severity})")
    rules.append(
        "columns outside the contract are "
        + ("allowed" if contract.schema_rule.allow_extra_columns else "refused")
    )
    lines += ["", "Table checks: " + "; ".join(rules) + "."]
    lines += ["", "Rows failing an error-severity check are quarantined, not stored in the table."]
    return "\n".join(lines)


def _results(facts: _Facts) -> str:
    if not facts.results:
        return "No quality results are recorded for this version."
    rows = [
        (_when(r["created_at"]), r["kind"], r["status"], r["contract_version"], r["rows_checked"],
         r["rows_passed"], r["rows_warned"], r["rows_quarantined"])
        for r in facts.results[:LIST_LIMIT]
    ]  # fmt: skip
    headers = ["at", "kind", "status", "contract", "checked", "passed", "warned", "quarantined"]
    return "\n".join(table(headers, rows))


def _quarantine(facts: _Facts) -> str | None:
    from plinth.quality.gate import quarantine_name

    ingests = [r for r in facts.results if r["kind"] == "ingest"]
    if not ingests:
        return None
    held = sum(r["rows_quarantined"] for r in ingests)
    if not held:
        return "No rows were quarantined by the ingest checks recorded for this version."
    return (
        f"{held:,} row(s) failed an error-severity check when this version was ingested and were "
        f"moved to table `{quarantine_name(facts.table)}` with the names of the failing checks; "
        "none were deleted."
    )


def _versions(facts: _Facts) -> str:
    total = facts.table_info.version_count
    rows = [
        (v.version, v.operation, v.row_count, v.rows_added, _when(v.created_at), v.created_by,
         "this version" if v.version == facts.version else None)
        for v in facts.history[-LIST_LIMIT:]
    ]  # fmt: skip
    headers = ["version", "operation", "rows", "rows added", "created", "by", ""]
    intro = f"The table has {total} version(s); versions up to this one:\n\n"
    return intro + "\n".join(table(headers, rows))


def _listed(items: list[str], none: str) -> str:
    return "\n".join(f"- {item}" for item in items) if items else none


def _catalog_answers(facts: _Facts) -> dict[str, tuple[str | None, str]]:
    """Each question's answer from the catalog (``None``: unknown) and its source."""
    created = (
        f"Table `{facts.table}` was created by {facts.table_info.created_by} at "
        f"{_when(facts.table_info.created_at)}; this version by {facts.info.created_by} at "
        f"{_when(facts.info.created_at)}."
    )
    read = f"`ws.lake.read('{facts.table}', version={facts.version})`"
    fresh = facts.contract.contract.freshness if facts.contract else None
    views = [f"`{n}` v{v}" + (f": {inline(d)}" if d else "") for n, v, d in facts.views]
    describe = facts.description or (
        facts.contract.contract.description if facts.contract else None
    )
    info = facts.info
    marked = ", ".join(f"`{name}` ({action})" for name, action in sorted(facts.pii.items()))
    return {
        "motivation.creators": (created, "catalog"),
        "composition.sensitive": (
            f"The data contract marks these columns as personal data: {marked}. Columns it "
            "does not mark may still hold personal or confidential data."
            if marked
            else None,
            "data contract",
        ),
        "composition.instances": (
            inline(describe) if describe else None,
            "table description" if facts.description else "data contract description",
        ),
        "composition.count": (
            f"{info.row_count:,} rows and {len(info.schema)} columns in version {info.version}, "
            f"stored in {info.num_files:,} file(s) of {info.bytes:,} bytes.",
            "catalog",
        ),
        "composition.columns": (_columns(facts), "schema and stored profile"),
        "composition.missing": (_missing(facts), "stored profile"),
        "composition.errors": (_errors(facts), "quality results and profile"),
        "collection.acquired": (_acquired(facts), "lake history"),
        "collection.ingests": (_ingests(facts), "ingest records"),
        "collection.timeframe": (_timeframe(facts), "stored profile"),
        "preprocessing.checks": (_checks(facts), "data contract"),
        "preprocessing.results": (_results(facts), "quality results"),
        "preprocessing.quarantine": (_quarantine(facts), "quality results"),
        "preprocessing.raw": (
            "Source files are not copied: the catalog names each by path and SHA-256 (see "
            "Collection process), so the exact input can be verified against its hash. Every "
            f"committed version of the table stays readable by number, e.g. {read}.",
            "lake",
        ),
        "uses.feature_views": (
            _listed(views, f"No feature view reads table `{facts.table}`."),
            "feature definitions",
        ),
        "uses.training_sets": (
            _listed([f"`{t}`" for t in facts.training_sets], "No training set is recorded."),
            "lineage",
        ),
        "uses.models": (
            _listed([f"`{m}`" for m in facts.models], "No model version is recorded."),
            "model registry",
        ),
        "distribution.location": (
            f"A Delta table at `{inline(facts.table_info.location)}`, read with {read}.",
            "lake",
        ),
        "maintenance.versions": (_versions(facts), "lake history"),
        "maintenance.freshness": (
            f"The data contract expects the newest `{fresh.column}` value to be at most "
            f"{fresh.max_age} old (severity {fresh.severity})."
            if fresh
            else None,
            "data contract",
        ),
    }


def build_datasheet(
    ws: Workspace, table_name: str, version: int, answers: Mapping[str, str] | None = None
) -> Datasheet:
    """Gather the datasheet of ``table_name`` at ``version`` (see the module docstring).

    ``answers`` holds a person's answers by question id (:data:`QUESTIONS`); they fill the
    questions the catalog cannot answer and are added after a catalog answer otherwise.

    Example:
        >>> # build_datasheet(ws, "flights", 0, {"distribution.license": "CC0"}).counts()
    """
    facts = _gather(ws, table_name, version)
    if facts is None:
        missing = f"Table version `{table_name}@{version}` is no longer in the catalog."
        known: dict[str, tuple[str | None, str]] = {"composition.count": (missing, "catalog")}
    else:
        known = _catalog_answers(facts)
    human = dict(answers or {})
    out = []
    for qid, question in QUESTIONS.items():
        text, source = known.get(qid, (None, None))
        given = human.get(qid)
        if given is not None and str(given).strip():
            note = str(given).strip()
            text, source = (
                (f"{text}\n\n{note}", f"{source}; answers file") if text else (note, "answers file")
            )
        out.append(Answer(qid, question, text, source if text is not None else None))
    return Datasheet(table_name, version, out)
