"""The console's video jobs: a hold for the quoted maximum, a line per person, a worker that runs them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 01:58:22.134480
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "video_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("hold_id", sa.Uuid(), nullable=False),
        sa.Column("quality", sa.String(length=16), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'queued'"), nullable=False),
        sa.Column("seconds_produced", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure", sa.String(length=32), nullable=True),
        sa.CheckConstraint("outcome IN ('complete', 'short', 'fail')", name=op.f("ck_video_jobs_outcome_known")),
        sa.CheckConstraint(
            "status IN ('queued', 'starting', 'running', 'done', 'failed')", name=op.f("ck_video_jobs_status_known")
        ),
        sa.CheckConstraint(
            "seconds > 0 AND (seconds_produced IS NULL OR seconds_produced <= seconds)",
            name=op.f("ck_video_jobs_seconds"),
        ),
        sa.ForeignKeyConstraint(
            ["hold_id"], ["holds.id"], name=op.f("fk_video_jobs_hold_id_holds"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_video_jobs_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_video_jobs")),
        sa.UniqueConstraint("hold_id", name=op.f("uq_video_jobs_hold_id")),
    )
    op.create_index(
        "ix_video_jobs_active",
        "video_jobs",
        ["user_id", "created_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('queued', 'starting', 'running')"),
    )
    op.create_index("ix_video_jobs_user_id_created_at", "video_jobs", ["user_id", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_video_jobs_user_id_created_at", table_name="video_jobs")
    op.drop_index(
        "ix_video_jobs_active",
        table_name="video_jobs",
        postgresql_where=sa.text("status IN ('queued', 'starting', 'running')"),
    )
    op.drop_table("video_jobs")
