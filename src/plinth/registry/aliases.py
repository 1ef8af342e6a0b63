"""Aliases: movable names (``champion``, ``challenger`` ...) for a model's versions.

Every change is recorded as a :class:`~plinth.catalog.models.ModelAliasEvent` in the same
transaction as the alias itself: ``set`` (the alias is new), ``move`` (it pointed at
``previous_version`` before) or ``remove``. Setting an alias to the version it already
holds changes nothing and records nothing.

Example:
    >>> # with ws.catalog.session() as s: set_alias(s, "delay", "champion", 3, by="ana")
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from plinth._core.clock import utcnow
from plinth.catalog import audit
from plinth.catalog.models import ModelAlias, ModelAliasEvent, ModelVersion, RegisteredModel
from plinth.errors import ModelNotFoundError
from plinth.registry.records import AliasEvent
from plinth.registry.uri import check_alias, check_name


def unknown_model(name: str) -> ModelNotFoundError:
    """The error for a model name the registry does not have.

    Example:
        >>> unknown_model("delay").message
        "No model is registered under the name 'delay'."
    """
    return ModelNotFoundError(
        f"No model is registered under the name '{name}'.",
        hint="Run 'plinth models list' to see the registered models.",
    )


def require_model(session: Session, name: str) -> None:
    """Raise :class:`ModelNotFoundError` unless a model called ``name`` is registered.

    Example:
        >>> # require_model(session, "delay")
    """
    check_name(name)
    found = session.scalar(select(RegisteredModel.id).where(RegisteredModel.name == name))
    if found is None:
        raise unknown_model(name)


def require_version(session: Session, name: str, version: int) -> ModelVersion:
    """The catalog row of a version; :class:`ModelNotFoundError` naming what exists if absent.

    Example:
        >>> # require_version(session, "delay", 3).manifest_digest
    """
    require_model(session, name)
    row = session.scalar(
        select(ModelVersion).where(ModelVersion.model_name == name, ModelVersion.version == version)
    )
    if row is None:
        versions = session.scalars(
            select(ModelVersion.version)
            .where(ModelVersion.model_name == name)
            .order_by(ModelVersion.version)
        ).all()
        shown = ", ".join(str(v) for v in versions[-10:]) or "none"
        raise ModelNotFoundError(
            f"Model '{name}' has no version {version}.",
            hint=f"Its versions are: {shown}.",
        )
    return row


def aliases_of(session: Session, name: str) -> dict[str, int]:
    """Every alias of a model and the version it points at, by alias name.

    Example:
        >>> # aliases_of(session, "delay")
        >>> # {'challenger': 4, 'champion': 3}
    """
    rows = session.execute(
        select(ModelAlias.alias, ModelAlias.version)
        .where(ModelAlias.model_name == name)
        .order_by(ModelAlias.alias)
    )
    return {alias: version for alias, version in rows}


def alias_version(session: Session, name: str, alias: str) -> int:
    """The version an alias points at; :class:`ModelNotFoundError` if it is not set.

    Example:
        >>> # alias_version(session, "delay", "champion")
    """
    version = session.scalar(
        select(ModelAlias.version).where(ModelAlias.model_name == name, ModelAlias.alias == alias)
    )
    if version is None:
        require_model(session, name)
        known = ", ".join(aliases_of(session, name)) or "none"
        raise ModelNotFoundError(
            f"Model '{name}' has no alias '{alias}'.",
            hint=f"Its aliases are: {known}. Set one with 'plinth models alias set'.",
        )
    return int(version)


def _event(row: ModelAliasEvent) -> AliasEvent:
    return AliasEvent(
        row.model_name, row.alias, row.action, row.version, row.previous_version, row.reason,
        row.at, row.by,
    )  # fmt: skip


def set_alias(
    session: Session,
    name: str,
    alias: str,
    version: int,
    *,
    by: str,
    reason: str | None = None,
) -> AliasEvent | None:
    """Point ``alias`` at ``version``; return the recorded event (``None`` if unchanged).

    Example:
        >>> # set_alias(session, "delay", "champion", 3, by="ana", reason="better AUC")
    """
    check_alias(alias, settable=True)
    require_version(session, name, version)
    current = session.scalar(
        select(ModelAlias)
        .where(ModelAlias.model_name == name, ModelAlias.alias == alias)
        .with_for_update()
    )
    now = utcnow()
    if current is not None and current.version == version:
        return None
    previous = current.version if current is not None else None
    if current is None:
        current = ModelAlias(model_name=name, alias=alias, version=version, set_at=now, set_by=by)
        session.add(current)
    else:
        current.version, current.set_at, current.set_by = version, now, by
    event = ModelAliasEvent(
        model_name=name,
        alias=alias,
        action="set" if previous is None else "move",
        version=version,
        previous_version=previous,
        reason=reason,
        at=now,
        by=by,
    )
    session.add(event)
    _audit(session, name, alias, version, previous, by, reason)
    session.flush()
    return _event(event)


def remove_alias(
    session: Session, name: str, alias: str, *, by: str, reason: str | None = None
) -> AliasEvent:
    """Remove an alias, recording the version it held; :class:`ModelNotFoundError` if unset.

    Example:
        >>> # remove_alias(session, "delay", "challenger", by="ana")
    """
    check_alias(alias)
    current = session.scalar(
        select(ModelAlias)
        .where(ModelAlias.model_name == name, ModelAlias.alias == alias)
        .with_for_update()
    )
    if current is None:
        alias_version(session, name, alias)  # raises the right error
    assert current is not None
    event = ModelAliasEvent(
        model_name=name,
        alias=alias,
        action="remove",
        version=None,
        previous_version=current.version,
        reason=reason,
        at=utcnow(),
        by=by,
    )
    session.delete(current)
    session.add(event)
    _audit(session, name, alias, None, current.version, by, reason)
    session.flush()
    return _event(event)


def _audit(
    session: Session,
    name: str,
    alias: str,
    version: int | None,
    previous: int | None,
    by: str,
    reason: str | None,
) -> None:
    """Append the alias change to the audit chain (``version`` is ``None`` for a removal)."""
    audit.record(
        session,
        actor=by,
        action="model.alias",
        resource=f"model:{name}",
        details={"alias": alias, "version": version, "previous": previous, "reason": reason},
    )


def history(session: Session, name: str, alias: str | None = None) -> list[AliasEvent]:
    """The alias events of a model (or of one alias), oldest first.

    Example:
        >>> # [e.action for e in history(session, "delay", "champion")]
    """
    require_model(session, name)
    query = select(ModelAliasEvent).where(ModelAliasEvent.model_name == name)
    if alias is not None:
        query = query.where(ModelAliasEvent.alias == check_alias(alias))
    return [_event(row) for row in session.scalars(query.order_by(ModelAliasEvent.id))]
