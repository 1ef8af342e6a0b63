"""Experiment tracking: runs, params, tags, metric series and packed points, artifacts, resources.

Revision ID: 0004_runs
Revises: 0003_features
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_runs"
down_revision = "0003_features"
branch_labels = None
depends_on = None


def _run_fk() -> sa.ForeignKey:
    return sa.ForeignKey("runs.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("experiment", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("launcher", sa.String(32), nullable=False),
        sa.Column("entry_point", sa.Text(), nullable=True),
        sa.Column("arguments", sa.JSON(), nullable=True),
        sa.Column("environment", sa.JSON(), nullable=True),
        sa.Column("requested", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("created_by", sa.String(256), nullable=False),
    )
    op.create_index("ix_runs_experiment_started", "runs", ["experiment", "started_at"])
    op.create_index("ix_runs_parent", "runs", ["parent_id"])
    op.create_table(
        "run_params",
        sa.Column("run_id", sa.String(64), _run_fk(), primary_key=True),
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("number", sa.Float(), nullable=True),
    )
    op.create_index("ix_run_params_key_number", "run_params", ["key", "number"])
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.String(64), _run_fk(), primary_key=True),
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_index("ix_run_tags_key_value", "run_tags", ["key", "value"])
    op.create_table(
        "run_metrics",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), _run_fk(), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("last", sa.Float(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("min", sa.Float(), nullable=True),
        sa.Column("max", sa.Float(), nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("run_id", "key", name="uq_run_metrics_key"),
    )
    op.create_index("ix_run_metrics_key_last", "run_metrics", ["key", "last"])
    op.create_table(
        "metric_chunks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "metric_id",
            sa.Integer(),
            sa.ForeignKey("run_metrics.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("first_step", sa.BigInteger(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("steps", sa.LargeBinary(), nullable=False),
        sa.Column("values", sa.LargeBinary(), nullable=False),
        sa.Column("timestamps_us", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_metric_chunks_series_step", "metric_chunks", ["metric_id", "first_step"])
    op.create_table(
        "run_artifacts",
        sa.Column("run_id", sa.String(64), _run_fk(), primary_key=True),
        sa.Column("name", sa.String(512), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "run_resources",
        sa.Column("run_id", sa.String(64), _run_fk(), primary_key=True),
        sa.Column("rank", sa.Integer(), primary_key=True),
        sa.Column("host", sa.String(256), nullable=False),
        sa.Column("wall_seconds", sa.Float(), nullable=False),
        sa.Column("cpu_seconds", sa.Float(), nullable=False),
        sa.Column("peak_rss_bytes", sa.BigInteger(), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("gpu_seconds", sa.Float(), nullable=False),
        sa.Column("gpu_peak_bytes", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("run_resources", "run_artifacts", "metric_chunks", "run_metrics"):
        op.drop_table(table)
    op.drop_table("run_tags")
    op.drop_table("run_params")
    op.drop_table("runs")
