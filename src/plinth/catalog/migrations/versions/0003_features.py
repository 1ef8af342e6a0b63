"""Feature store: definitions, training sets and materializations.

Revision ID: 0003_features
Revises: 0002_quality
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_features"
down_revision = "0002_quality"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_definitions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.UniqueConstraint("kind", "name", "version", name="uq_feature_definitions_version"),
    )
    op.create_table(
        "training_sets",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("spine", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("artifact_digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
    )
    op.create_table(
        "materializations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("view_name", sa.String(128), nullable=False),
        sa.Column("view_version", sa.Integer(), nullable=False),
        sa.Column("table_version", sa.Integer(), nullable=False),
        sa.Column("start", sa.DateTime(), nullable=True),
        sa.Column("end", sa.DateTime(), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("online_url", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_materializations_view", "materializations", ["view_name"])


def downgrade() -> None:
    op.drop_index("ix_materializations_view", table_name="materializations")
    op.drop_table("materializations")
    op.drop_table("training_sets")
    op.drop_table("feature_definitions")
