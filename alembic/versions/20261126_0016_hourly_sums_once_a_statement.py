"""Hourly usage sums kept once a statement, not once a row (issue 12): a batch of 100 charges is one
INSERT of 100 usage logs, which the row trigger of 0006 answered with 100 upserts of usage_hourly.
Statement triggers read the statement's rows from transition tables and upsert each (person, hour,
model) once. PostgreSQL allows transition tables only on triggers of one event: three triggers.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-26 08:00:00.000000
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADD = """
CREATE FUNCTION usage_hourly_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO usage_hourly (user_id, hour, model, count, amount)
    SELECT user_id, date_trunc('hour', created_at, 'UTC'), model, count(*), sum(amount)
      FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3  -- rows taken in one order
    ON CONFLICT (user_id, hour, model)
    DO UPDATE SET count = usage_hourly.count + EXCLUDED.count, amount = usage_hourly.amount + EXCLUDED.amount;
    RETURN NULL;
END
$$
"""

# The groups' rows are locked first, in key order: the statement after them then reads them afresh
# (under READ COMMITTED one statement that waited on a row would recheck only the rows its own
# snapshot matched, and a concurrent change could leave the sums wrong without an error). A group
# whose every row goes is deleted; the others are lowered (a sum of zero would break the table's
# check, so the two are told apart by the count).
REMOVE = """
CREATE FUNCTION usage_hourly_remove() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM usage_hourly h
      JOIN (SELECT DISTINCT user_id, date_trunc('hour', created_at, 'UTC') AS hour, model FROM old_rows) g
        ON (h.user_id, h.hour, h.model) = (g.user_id, g.hour, g.model)
     ORDER BY h.user_id, h.hour, h.model
       FOR UPDATE OF h;
    WITH gone AS (
        SELECT user_id, date_trunc('hour', created_at, 'UTC') AS hour, model, count(*) AS count,
               sum(amount) AS amount
          FROM old_rows GROUP BY 1, 2, 3),
    emptied AS (
        DELETE FROM usage_hourly h USING gone g
         WHERE (h.user_id, h.hour, h.model) = (g.user_id, g.hour, g.model) AND h.count = g.count)
    UPDATE usage_hourly h SET count = h.count - g.count, amount = h.amount - g.amount
      FROM gone g
     WHERE (h.user_id, h.hour, h.model) = (g.user_id, g.hour, g.model) AND h.count <> g.count;
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO usage_hourly (user_id, hour, model, count, amount)
        SELECT user_id, date_trunc('hour', created_at, 'UTC'), model, count(*), sum(amount)
          FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (user_id, hour, model)
        DO UPDATE SET count = usage_hourly.count + EXCLUDED.count, amount = usage_hourly.amount + EXCLUDED.amount;
    END IF;
    RETURN NULL;
END
$$
"""

TRIGGERS = [
    "CREATE TRIGGER usage_logs_hourly AFTER INSERT ON usage_logs REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION usage_hourly_add()",
    "CREATE TRIGGER usage_logs_hourly_update AFTER UPDATE ON usage_logs "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_hourly_remove()",
    "CREATE TRIGGER usage_logs_hourly_delete AFTER DELETE ON usage_logs REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION usage_hourly_remove()",
]


def upgrade() -> None:
    op.execute("DROP TRIGGER usage_logs_hourly ON usage_logs")
    op.execute("DROP FUNCTION usage_hourly_follow()")
    op.execute(ADD)
    op.execute(REMOVE)
    for trigger in TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    for name in ("usage_logs_hourly", "usage_logs_hourly_update", "usage_logs_hourly_delete"):
        op.execute(f"DROP TRIGGER {name} ON usage_logs")
    op.execute("DROP FUNCTION usage_hourly_add()")
    op.execute("DROP FUNCTION usage_hourly_remove()")
    op.execute(_row_trigger_function())
    op.execute(
        "CREATE TRIGGER usage_logs_hourly AFTER INSERT OR UPDATE OR DELETE ON usage_logs "
        "FOR EACH ROW EXECUTE FUNCTION usage_hourly_follow()"
    )


def _row_trigger_function() -> str:
    """0006's function, read from its migration (one copy of it)."""
    path = next(Path(__file__).parent.glob("*_0006_*.py"))
    spec = importlib.util.spec_from_file_location("migration_0006", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TRIGGER_FUNCTION
