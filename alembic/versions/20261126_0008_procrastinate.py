"""The task queue's tables (procrastinate 3.10, SPEC 17), in the app's own database.

procrastinate's schema is kept here as it shipped (alembic/procrastinate/schema-3.10.0.sql), so
that Alembic alone owns the schema; a later procrastinate release brings its own migration files,
applied by a revision of ours.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 02:10:00
"""

from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = Path(__file__).resolve().parent.parent / "procrastinate" / "schema-3.10.0.sql"

DROP = """
DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs,
    procrastinate_workers CASCADE;
DO $$
DECLARE f record;
BEGIN
    FOR f IN SELECT oid::regprocedure AS signature FROM pg_proc WHERE proname LIKE 'procrastinate\\_%' LOOP
        EXECUTE 'DROP FUNCTION ' || f.signature || ' CASCADE';
    END LOOP;
END $$;
DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_status, procrastinate_job_event_type CASCADE;
"""


def _run(sql: str) -> None:
    op.get_bind().exec_driver_sql(sql.replace("%", "%%"))  # the driver reads % as a placeholder


def upgrade() -> None:
    _run(SCHEMA.read_text(encoding="utf-8"))


def downgrade() -> None:
    _run(DROP)
