"""Credit lots (SPEC 20): `credit_lots` (one per credit: paid, granted or plan money, what is left
of it, when it expires) and `lot_draws` (what each charge, debit, refund or expiry took from which
lot); ledger kinds `expiry` and `plan`; events `credit.expiring` and `credit.expired`.

Every account gets lots that reproduce its history, replayed entry by entry in the order they were
written: each credit becomes a lot of its kind (a top-up: paid; an invite reward, a code, an admin
credit: granted; none expires, as none did), and each debit draws from the lots it had then, in the
spending order (all lots never expire, so: granted before paid, then the oldest): a charge (its
usage log) and an admin's debit as any charge, leaving alone what a refund under way at that time
(from its request to its answer) had set aside in its order's lot, as refunds do from now on; a
refund from its own order's lot first (what a gift paid for then, before this rule, from the other
lots in that order). A pending refund's amount stays set aside in its order's lot (`reserved`).
Each lot's remaining then sums to the account's balance, which `ledger verify` checks (invariant 10).

Downgrade drops both tables, makes `expiry` and `plan` entries `adjustment`s (memo kept: the
balances and the ledger stay whole) and deletes the credit.* events.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 23:30:00.000000
"""

import bisect
from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "('topup', 'usage', 'invite_reward', 'adjustment', 'refund', 'redemption'{})"
EVENTS = (
    "('topup.succeeded', 'balance.low', 'hold.expired', 'refund.succeeded', 'refund.failed', "
    "'redemption.redeemed', 'balance.adjusted'{})"
)
RANK = {"plan": 0, "granted": 1, "paid": 2}


def _checks(with_lots: bool) -> None:
    kinds = KINDS.format(", 'expiry', 'plan'" if with_lots else "")
    events = EVENTS.format(", 'credit.expiring', 'credit.expired'" if with_lots else "")
    op.drop_constraint(op.f("ck_ledger_entries_kind_known"), "ledger_entries", type_="check")
    op.create_check_constraint(op.f("ck_ledger_entries_kind_known"), "ledger_entries", f"kind IN {kinds}")
    op.drop_constraint(op.f("ck_events_type_known"), "events", type_="check")
    op.create_check_constraint(op.f("ck_events_type_known"), "events", f"type IN {events}")


def upgrade() -> None:
    _checks(with_lots=True)
    op.create_table(
        "credit_lots",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column(
            "spend_rank",
            sa.SmallInteger(),
            sa.Computed("CASE category WHEN 'plan' THEN 0 WHEN 'granted' THEN 1 ELSE 2 END", persisted=True),
            nullable=False,
        ),
        sa.Column("ledger_entry_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("remaining", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("reserved", sa.Numeric(precision=18, scale=4), server_default=sa.text("0"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("category IN ('plan', 'granted', 'paid')", name=op.f("ck_credit_lots_category_known")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_credit_lots_amount_positive")),
        sa.CheckConstraint(
            "remaining >= 0 AND remaining <= amount", name=op.f("ck_credit_lots_remaining_within_amount")
        ),
        sa.CheckConstraint(
            "reserved >= 0 AND reserved <= remaining", name=op.f("ck_credit_lots_reserved_within_remaining")
        ),
        sa.CheckConstraint("category <> 'paid' OR expires_at IS NULL", name=op.f("ck_credit_lots_paid_never_expires")),
        sa.CheckConstraint(
            "expires_at IS NULL OR expires_at > created_at", name=op.f("ck_credit_lots_expires_after_creation")
        ),
        sa.ForeignKeyConstraint(
            ["ledger_entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_credit_lots_ledger_entry_id_ledger_entries"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_credit_lots_user_id_users"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_lots")),
        sa.UniqueConstraint("ledger_entry_id", name=op.f("uq_credit_lots_ledger_entry_id")),
    )
    op.create_table(
        "lot_draws",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("lot_id", sa.BigInteger(), nullable=False),
        sa.Column("usage_log_id", sa.Uuid(), nullable=True),
        sa.Column("ledger_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_lot_draws_amount_positive")),
        sa.CheckConstraint("num_nonnulls(usage_log_id, ledger_entry_id) = 1", name=op.f("ck_lot_draws_one_source")),
        sa.ForeignKeyConstraint(
            ["ledger_entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_lot_draws_ledger_entry_id_ledger_entries"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["credit_lots.id"], name=op.f("fk_lot_draws_lot_id_credit_lots"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["usage_log_id"], ["usage_logs.id"], name=op.f("fk_lot_draws_usage_log_id_usage_logs"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lot_draws")),
    )
    _backfill()
    op.create_index(
        "ix_credit_lots_spending",
        "credit_lots",
        ["user_id", sa.text("expires_at NULLS LAST"), "spend_rank", "created_at", "id"],
        postgresql_where=sa.text("remaining > 0"),
    )
    op.create_index(
        "ix_credit_lots_expires_at", "credit_lots", ["expires_at"], postgresql_where=sa.text("remaining > 0")
    )
    op.create_index("ix_lot_draws_lot_id", "lot_draws", ["lot_id"])
    op.create_index("ix_lot_draws_usage_log_id", "lot_draws", ["usage_log_id"])
    op.create_index("ix_lot_draws_ledger_entry_id", "lot_draws", ["ledger_entry_id"])
    op.execute("ANALYZE credit_lots")
    op.execute("ANALYZE lot_draws")


class _Lot:
    __slots__ = ("amount", "category", "created_at", "entry_id", "id", "order_id", "remaining", "reserved", "user_id")

    def __init__(self, lot_id: int, entry: sa.Row, category: str) -> None:
        self.id, self.user_id, self.entry_id = lot_id, entry.user_id, entry.id
        self.order_id = entry.payment_transaction_id
        self.category, self.amount, self.remaining = category, entry.amount, entry.amount
        self.created_at, self.reserved = entry.created_at, Decimal(0)

    def key(self) -> tuple:  # the spending order, every lot never expiring
        return (RANK[self.category], self.created_at, self.id)


def _backfill() -> None:
    """Replay every account's entries in order (see the module's docstring), writing lots and draws
    with COPY. Server-side cursor: the history is read once, a person at a time."""
    bind = op.get_bind()
    raw = bind.connection.driver_connection
    # Each refund set its amount aside in its order's lot from its request until its answer (as
    # refunds do from now on): charges of that window did not spend it.
    windows: dict = {}
    for order_id, amount, status, created_at, settled_at in bind.execute(
        sa.text("SELECT payment_transaction_id, amount, status, created_at, settled_at FROM refunds")
    ):
        windows.setdefault(order_id, []).append((amount, status, created_at, settled_at))
    lots: list[_Lot] = []
    draws: list[tuple] = []
    next_id = 1
    state: dict = {"user": None, "open": [], "by_order": {}}

    def set_aside(lot: _Lot, at) -> Decimal:  # what the order's refunds under way at `at` set aside
        return sum(
            (
                a
                for a, _, begun, ended in windows.get(lot.order_id, ())
                if begun <= at and (ended is None or ended > at)
            ),
            Decimal(0),
        )

    def close_person() -> None:
        for order_id, lot in state["by_order"].items():
            pending = sum((a for a, status, _, _ in windows.get(order_id, ()) if status == "pending"), Decimal(0))
            lot.reserved = min(pending, lot.remaining)

    rows = bind.execute(
        sa.text(
            "SELECT e.id, e.user_id, e.amount, e.kind, e.usage_log_id, e.payment_transaction_id, e.created_at,"
            " r.payment_transaction_id AS refunded_order"
            " FROM ledger_entries e LEFT JOIN refunds r ON r.id = e.refund_id ORDER BY e.user_id, e.id"
        ).execution_options(stream_results=True, yield_per=10_000)  # this statement's, not the connection's
    )
    for entry in rows:
        if entry.user_id != state["user"]:
            close_person()
            state = {"user": entry.user_id, "open": [], "by_order": {}}
        if entry.amount > 0:
            category = "paid" if entry.kind == "topup" else "plan" if entry.kind == "plan" else "granted"
            lot = _Lot(next_id, entry, category)
            next_id += 1
            lots.append(lot)
            bisect.insort(state["open"], lot, key=_Lot.key)
            if entry.payment_transaction_id is not None:
                state["by_order"][entry.payment_transaction_id] = lot
            continue
        wanted = -entry.amount
        source = ("usage", entry.usage_log_id) if entry.usage_log_id is not None else ("entry", entry.id)
        own = state["by_order"].get(entry.refunded_order)
        if own is not None and own.remaining > 0:  # a refund: its order's money first
            part = min(own.remaining, wanted)
            own.remaining -= part
            wanted -= part
            draws.append((own.id, source, part, entry.created_at))
        for lot in state["open"]:  # the spending order; what refunds under way set aside is left alone
            free = lot.remaining - (set_aside(lot, entry.created_at) if lot.order_id and own is None else 0)
            part = min(max(free, Decimal(0)), wanted)
            if part > 0:
                lot.remaining -= part
                wanted -= part
                draws.append((lot.id, source, part, entry.created_at))
            if not wanted:
                break
        for lot in state["open"]:  # before lots, a charge could spend money a refund had set aside
            part = min(lot.remaining, wanted)
            if part > 0:
                lot.remaining -= part
                wanted -= part
                draws.append((lot.id, source, part, entry.created_at))
        state["open"] = [lot for lot in state["open"] if lot.remaining > 0]
    close_person()

    with raw.cursor() as cursor:
        with cursor.copy(
            "COPY credit_lots (id, user_id, category, ledger_entry_id, amount, remaining, reserved, created_at)"
            " FROM STDIN"
        ) as copy:
            for lot in lots:
                copy.write_row(
                    (lot.id, lot.user_id, lot.category, lot.entry_id, lot.amount, lot.remaining, lot.reserved,
                     lot.created_at)
                )  # fmt: skip
        with cursor.copy(
            "COPY lot_draws (lot_id, usage_log_id, ledger_entry_id, amount, created_at) FROM STDIN"
        ) as copy:
            for lot_id, (kind, ref), amount, created_at in draws:
                usage, entry = (ref, None) if kind == "usage" else (None, ref)
                copy.write_row((lot_id, usage, entry, amount, created_at))
    op.execute(f"SELECT setval(pg_get_serial_sequence('credit_lots', 'id'), {max(next_id - 1, 1)}, {next_id > 1})")


def downgrade() -> None:
    op.drop_table("lot_draws")
    op.drop_table("credit_lots")
    op.execute("UPDATE ledger_entries SET kind = 'adjustment' WHERE kind IN ('expiry', 'plan')")
    op.execute("DELETE FROM events WHERE type IN ('credit.expiring', 'credit.expired')")
    _checks(with_lots=False)
