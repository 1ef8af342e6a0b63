"""Errors raised by Plinth.

Every user-facing failure is a :class:`PlinthError` whose message says what happened, why, and
what to do about it. The CLI prints the message without a traceback and exits non-zero; the
HTTP APIs answer 4xx with the message as JSON.

::

    PlinthError
    ├── ConfigError            a setting or URL is malformed or unusable
    │   └── ContractError      a data contract is malformed or does not fit its table
    ├── NotFoundError          a named thing does not exist
    │   ├── TableNotFoundError
    │   ├── VersionNotFoundError
    │   ├── RunNotFoundError
    │   └── ModelNotFoundError  no such model, version or alias
    ├── SourceError            an ingest source cannot be read
    │   └── ParseError         a row or value in the source cannot be parsed
    ├── SchemaMismatchError    incoming data does not fit the table's schema
    ├── ContractViolationError a table-level contract check blocked a commit, or a check failed
    ├── StorageError           the artifact store or lake cannot be written or read
    │   ├── UnsafePathError    a name would escape its storage root
    │   └── IntegrityError     stored bytes do not match their content hash
    ├── CatalogError           the catalog database is unusable
    ├── PipelineError          a pipeline is malformed, or one of its steps failed
    │   └── StepFailedError    a step failed after its retries
    └── ConflictError          a concurrent change could not be reconciled
"""

from __future__ import annotations

__all__ = [
    "CatalogError",
    "ConfigError",
    "ConflictError",
    "ContractError",
    "ContractViolationError",
    "IntegrityError",
    "ModelNotFoundError",
    "NotFoundError",
    "ParseError",
    "PipelineError",
    "PlinthError",
    "RunNotFoundError",
    "SchemaMismatchError",
    "SourceError",
    "StepFailedError",
    "StorageError",
    "TableNotFoundError",
    "UnsafePathError",
    "VersionNotFoundError",
]


class PlinthError(Exception):
    """Base class of every error Plinth raises for bad input or an unusable environment.

    ``message`` says what happened and why; ``hint`` says what to do. ``str(error)`` joins them.

    Example:
        >>> str(PlinthError("Table 'x' does not exist.", hint="Run 'plinth tables'."))
        "Table 'x' does not exist. Run 'plinth tables'."
    """

    #: HTTP status the APIs answer with for this error.
    status_code = 400

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}" if hint else message)


class ConfigError(PlinthError):
    """A setting, URL or configuration file is malformed or points at something unusable."""


class ContractError(ConfigError):
    """A data contract is malformed, or names columns or rules that do not fit its table."""


class ContractViolationError(PlinthError):
    """Data broke a contract badly enough to block a commit (or to fail ``plinth check``)."""

    status_code = 422


class NotFoundError(PlinthError):
    """A named object (table, version, artifact, ...) does not exist."""

    status_code = 404


class TableNotFoundError(NotFoundError):
    """No lake table has the given name."""


class VersionNotFoundError(NotFoundError):
    """A table exists but not at the requested version or time."""


class RunNotFoundError(NotFoundError):
    """No tracked run has the given id."""


class ModelNotFoundError(NotFoundError):
    """No registered model, model version or alias has the given name."""


class SourceError(PlinthError):
    """An ingest source is missing, unreadable or of an unknown kind."""


class ParseError(SourceError):
    """A row or value of a source cannot be parsed into the expected type."""


class SchemaMismatchError(PlinthError):
    """Incoming data has columns or types that differ from the table's schema."""

    status_code = 422


class StorageError(PlinthError):
    """The artifact store or the lake storage cannot be read or written."""


class UnsafePathError(StorageError):
    """A storage name would escape its root (``..``, absolute or encoded forms)."""


class IntegrityError(StorageError):
    """Stored bytes do not match the content hash they were written under."""

    status_code = 409


class CatalogError(PlinthError):
    """The catalog database cannot be opened, migrated or written."""


class ConflictError(PlinthError):
    """A concurrent change conflicts with this one and could not be retried."""

    status_code = 409


class PipelineError(PlinthError):
    """A pipeline is malformed (cycle, missing input, bad output) or could not run."""


class StepFailedError(PipelineError):
    """A pipeline step raised on every attempt; nothing downstream of it ran."""

    status_code = 422
