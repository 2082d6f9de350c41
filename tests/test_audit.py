"""The audit trail (services.audit): rows of who did what from where, refusals' rows, a person's pages."""

import uuid

from sqlalchemy import select

from ledger.errors import InvalidRequest
from ledger.models import Actor, AuditLog
from ledger.services.audit import audit_page, record_audit, refusal
from ledger.services.context import Context
from tests.factories import UserFactory


def test_a_recorded_row_says_who_did_what_from_where_in_the_callers_transaction(session):
    user = UserFactory()
    ctx = Context(Actor.USER, ip="203.0.113.7", user_agent="pytest")
    row = record_audit(session, "test.done", ctx=ctx, user_id=user.id, details={"amount": "5.00"})
    session.flush()
    stored = session.scalars(select(AuditLog).where(AuditLog.id == row.id)).one()
    assert (stored.user_id, stored.actor, stored.action, str(stored.ip), stored.user_agent, stored.details) == (
        user.id,
        "user",
        "test.done",
        "203.0.113.7",
        "pytest",
        {"amount": "5.00"},
    )


def test_a_refusal_carries_its_row_without_adding_it(session):
    user_id = uuid.uuid4()
    error = refusal(InvalidRequest(field="x"), "usage.refused", ctx=Context(Actor.INTERNAL), user_id=user_id)
    assert isinstance(error, InvalidRequest) and error.field == "x"
    assert (error.audit_row.action, error.audit_row.actor, error.audit_row.user_id) == (
        "usage.refused",
        Actor.INTERNAL,
        user_id,
    )
    assert error.audit_row.details == {}
    session.flush()
    assert error.audit_row not in session
    assert session.scalars(select(AuditLog).where(AuditLog.user_id == user_id)).all() == []


def test_a_persons_audit_page_holds_only_their_rows_newest_first(session):
    me, other = UserFactory(), UserFactory()
    ctx = Context(Actor.USER)
    mine = [record_audit(session, f"test.{n}", ctx=ctx, user_id=me.id) for n in range(3)]
    record_audit(session, "test.other", ctx=ctx, user_id=other.id)
    session.flush()
    page = audit_page(session, me.id)
    assert [row.action for row in page.items if row.action.startswith("test.")] == ["test.2", "test.1", "test.0"]
    assert page.older is None
    assert [row.id for row in audit_page(session, me.id, before=str(mine[1].id)).items] == [
        row.id for row in audit_page(session, me.id).items if row.id < mine[1].id
    ]
