"""Checks of the invariants of SPEC 4 (1-3, 7-9), 20 (10), 21 (plans) and others over all accounts,
for `flask ledger verify`, and of the sums derived from them.

Each check is one set-based query, so it runs over millions of rows without loading them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Breach:
    invariant: str
    subject: str
    detail: str


CHECKS: dict[str, str] = {
    "1 balance never negative": """
        SELECT user_id::text, 'balance ' || balance FROM billing_accounts WHERE balance < 0
    """,
    "2 balance equals the sum of the ledger": """
        SELECT a.user_id::text, 'balance ' || a.balance || ' but ledger sums to ' || coalesce(s.total, 0)
        FROM billing_accounts a
        LEFT JOIN (SELECT user_id, sum(amount) AS total FROM ledger_entries GROUP BY user_id) s
               ON s.user_id = a.user_id
        WHERE a.balance <> coalesce(s.total, 0)
    """,
    "2 balance equals the newest entry's balance_after": """
        SELECT a.user_id::text, 'balance ' || a.balance || ' but newest entry says ' || e.balance_after
        FROM billing_accounts a
        JOIN LATERAL (SELECT balance_after FROM ledger_entries
                      WHERE user_id = a.user_id ORDER BY id DESC LIMIT 1) e ON true
        WHERE a.balance <> e.balance_after
    """,
    "2 every entry's balance_after follows from the one before": """
        SELECT 'entry ' || id, 'balance_after ' || balance_after || ' but running sum is ' || running
        FROM (SELECT id, balance_after,
                     sum(amount) OVER (PARTITION BY user_id ORDER BY id) AS running
              FROM ledger_entries) t
        WHERE balance_after <> running
    """,
    "3 every usage log has exactly one ledger entry": """
        SELECT 'usage ' || u.id, count(e.id) || ' ledger entries, amount ' || u.amount
        FROM usage_logs u LEFT JOIN ledger_entries e ON e.usage_log_id = u.id
        GROUP BY u.id, u.amount
        HAVING count(e.id) <> 1 OR min(-e.amount) <> u.amount OR max(-e.amount) <> u.amount
    """,
    "3 a usage entry's user is its usage log's user": """
        SELECT 'entry ' || e.id, 'user ' || e.user_id || ' but usage log of ' || u.user_id
        FROM ledger_entries e JOIN usage_logs u ON u.id = e.usage_log_id
        WHERE e.user_id <> u.user_id
    """,
    "3 every succeeded payment has exactly one ledger entry, of its amount": """
        SELECT 'payment ' || p.id, p.status || ' with ' || count(e.id) || ' ledger entries, amount ' || p.amount
        FROM payment_transactions p LEFT JOIN ledger_entries e ON e.payment_transaction_id = p.id
        GROUP BY p.id, p.status, p.amount
        HAVING (p.status = 'succeeded') <> (count(e.id) = 1) OR count(e.id) > 1
            OR min(e.amount) <> p.amount OR max(e.amount) <> p.amount
    """,
    "3 a top-up entry's user is its payment's user": """
        SELECT 'entry ' || e.id, 'user ' || e.user_id || ' but payment of ' || p.user_id
        FROM ledger_entries e JOIN payment_transactions p ON p.id = e.payment_transaction_id
        WHERE e.user_id <> p.user_id
    """,
    "3 every paid invite reward has exactly one ledger entry per rewarded side": """
        SELECT 'invite ' || r.id, 'rewarded_at ' || coalesce(r.rewarded_at::text, 'null')
               || ' but entries inviter=' || coalesce(ei.amount::text, 'none') || ' (expected '
               || coalesce(r.inviter_reward::text, 'none') || '), invitee=' || coalesce(ee.amount::text, 'none')
               || ' (expected ' || coalesce(r.invitee_reward::text, 'none') || ')'
        FROM invite_relations r
        LEFT JOIN ledger_entries ei ON ei.invite_relation_id = r.id AND ei.user_id = r.inviter_id
        LEFT JOIN ledger_entries ee ON ee.invite_relation_id = r.id AND ee.user_id = r.invitee_id
        WHERE ei.amount IS DISTINCT FROM nullif(r.inviter_reward, 0)
           OR ee.amount IS DISTINCT FROM nullif(r.invitee_reward, 0)
    """,
    "3 a reward entry goes to one of its invitation's two people": """
        SELECT 'entry ' || e.id, 'user ' || e.user_id || ' is neither side of invite ' || r.id
        FROM ledger_entries e JOIN invite_relations r ON r.id = e.invite_relation_id
        WHERE e.user_id NOT IN (r.inviter_id, r.invitee_id)
    """,
    "19 an invitation that says why it earned nothing is unrewarded, after the invitee's first top-up": """
        SELECT 'invite ' || r.id, r.unrewarded_reason || ', but ' || CASE WHEN r.rewarded_at IS NOT NULL
               THEN 'it was rewarded' ELSE 'the invitee has no succeeded top-up' END
        FROM invite_relations r
        WHERE r.unrewarded_reason IS NOT NULL
          AND (r.rewarded_at IS NOT NULL OR NOT EXISTS (
                SELECT 1 FROM payment_transactions p WHERE p.user_id = r.invitee_id AND p.status = 'succeeded'))
    """,
    "7 held equals the active holds and the pending refunds": """
        SELECT a.user_id::text, 'held ' || a.held || ' but active holds and pending refunds sum to '
               || coalesce(h.total, 0)
        FROM billing_accounts a
        LEFT JOIN (SELECT user_id, sum(amount) AS total
                   FROM (SELECT user_id, amount FROM holds WHERE status = 'active'
                         UNION ALL SELECT user_id, amount FROM refunds WHERE status = 'pending') s
                   GROUP BY user_id) h
               ON h.user_id = a.user_id
        WHERE a.held <> coalesce(h.total, 0)
    """,
    "7 held is within the balance": """
        SELECT user_id::text, 'held ' || held || ' of a balance of ' || balance
        FROM billing_accounts WHERE held < 0 OR held > balance
    """,
    "8 a captured hold has one usage log, its own, of the captured amount": """
        SELECT 'hold ' || h.id, 'captured ' || coalesce(h.captured_amount::text, 'nothing') || ' but usage '
               || coalesce(u.id::text, 'none') || ' of ' || coalesce(u.amount::text, '-')
        FROM holds h LEFT JOIN usage_logs u ON u.id = h.usage_log_id
        WHERE h.status = 'captured'
          AND (u.id IS NULL OR u.amount <> h.captured_amount OR u.user_id <> h.user_id
               OR u.request_id <> h.request_id)
    """,
    "8 a hold that is not captured has no usage log": """
        SELECT 'hold ' || id, status || ' with usage ' || usage_log_id
        FROM holds WHERE status <> 'captured' AND usage_log_id IS NOT NULL
    """,
    "9 an order's refunds never exceed its amount": """
        SELECT 'payment ' || p.id, 'amount ' || p.amount || ' but refunded or pending ' || sum(r.amount)
        FROM payment_transactions p JOIN refunds r ON r.payment_transaction_id = p.id
        WHERE r.status IN ('pending', 'succeeded')
        GROUP BY p.id, p.amount
        HAVING sum(r.amount) > p.amount
    """,
    "9 only a succeeded order is refunded, and each refund is its order's person's": """
        SELECT 'refund ' || r.id, 'of a ' || p.status || ' order of another person: ' || (r.user_id <> p.user_id)
        FROM refunds r JOIN payment_transactions p ON p.id = r.payment_transaction_id
        WHERE p.status <> 'succeeded' OR r.user_id <> p.user_id
    """,
    "9 a succeeded refund has exactly one ledger entry, of its amount; the others none": """
        SELECT 'refund ' || r.id, r.status || ' with ' || count(e.id) || ' entries'
        FROM refunds r LEFT JOIN ledger_entries e ON e.refund_id = r.id
        GROUP BY r.id, r.status, r.amount, r.user_id
        HAVING count(e.id) <> (r.status = 'succeeded')::int
            OR min(-e.amount) <> r.amount OR max(-e.amount) <> r.amount OR min(e.user_id::text) <> r.user_id::text
    """,
    "9 a code credits at most once: a redeemed code has one entry, of its amount, to whoever redeemed it": """
        SELECT 'code ' || c.code, coalesce(c.redeemed_by::text, 'not redeemed') || ' with ' || count(e.id) || ' entries'
        FROM redemption_codes c LEFT JOIN ledger_entries e ON e.redemption_code = c.code
        GROUP BY c.code, c.redeemed_by, c.amount
        HAVING count(e.id) <> (c.redeemed_by IS NOT NULL)::int
            OR min(e.amount) <> c.amount OR min(e.user_id::text) <> c.redeemed_by::text
    """,
    "16 a topup.succeeded event tells of one succeeded order of its person, once, with its amount": """
        SELECT 'event ' || min(ev.id::text), count(*) || ' event(s) for order ' || (ev.data ->> 'transaction_id')
               || coalesce(' (' || min(p.status) || ')', ' (no such order)')
        FROM events ev LEFT JOIN payment_transactions p ON p.id::text = ev.data ->> 'transaction_id'
        WHERE ev.type = 'topup.succeeded'
        GROUP BY ev.data ->> 'transaction_id'
        HAVING count(*) > 1 OR min(p.status) IS DISTINCT FROM 'succeeded'
            OR bool_or(p.user_id IS DISTINCT FROM ev.user_id)
            OR bool_or((ev.data ->> 'amount')::numeric IS DISTINCT FROM p.amount)
    """,
    "16 a refund event tells of a refund of its person that ended that way": """
        SELECT 'event ' || ev.id, ev.type || ' for a refund that is ' || coalesce(r.status, 'missing')
        FROM events ev LEFT JOIN refunds r ON r.id::text = ev.data ->> 'refund_id'
        WHERE ev.type IN ('refund.succeeded', 'refund.failed')
          AND (r.id IS NULL OR r.user_id <> ev.user_id OR ev.type <> 'refund.' || r.status)
    """,
    "10 balance equals the sum of the remaining of the account's lots": """
        SELECT a.user_id::text, 'balance ' || a.balance || ' but lots hold ' || coalesce(l.total, 0)
        FROM billing_accounts a
        LEFT JOIN (SELECT user_id, sum(remaining) AS total FROM credit_lots GROUP BY user_id) l
               ON l.user_id = a.user_id
        WHERE a.balance <> coalesce(l.total, 0)
    """,
    "10 every credit has its lot, of its amount, of its kind of money": """
        SELECT 'entry ' || e.id, e.kind || ' of ' || e.amount || ' with lot ' || coalesce(l.id::text, 'none')
               || coalesce(' (' || l.category || ', ' || l.amount || ')', '')
        FROM ledger_entries e LEFT JOIN credit_lots l ON l.ledger_entry_id = e.id
        WHERE e.amount > 0
          AND (l.id IS NULL OR l.amount <> e.amount OR l.user_id <> e.user_id
               OR l.category <> CASE e.kind WHEN 'topup' THEN 'paid' WHEN 'plan' THEN 'plan' ELSE 'granted' END)
    """,
    "10 a lot's remaining is its amount less its draws, expiries and refunds": """
        SELECT 'lot ' || l.id, 'amount ' || l.amount || ' remaining ' || l.remaining || ' but drawn '
               || coalesce(d.total, 0)
        FROM credit_lots l LEFT JOIN (SELECT lot_id, sum(amount) AS total FROM lot_draws GROUP BY lot_id) d
               ON d.lot_id = l.id
        WHERE l.remaining <> l.amount - coalesce(d.total, 0) OR l.remaining < 0 OR l.remaining > l.amount
    """,
    "10 the draws of a charge sum to it, from its person's lots": """
        SELECT 'usage ' || u.id, 'amount ' || u.amount || ' but drew ' || coalesce(sum(d.amount), 0)
        FROM usage_logs u LEFT JOIN lot_draws d ON d.usage_log_id = u.id
        LEFT JOIN credit_lots l ON l.id = d.lot_id
        GROUP BY u.id, u.amount, u.user_id
        HAVING coalesce(sum(d.amount), 0) <> u.amount OR bool_or(l.user_id <> u.user_id)
    """,
    "10 the draws of a debit entry sum to it, from its person's lots; a credit draws nothing": """
        SELECT 'entry ' || e.id, e.kind || ' of ' || e.amount || ' but drew ' || coalesce(sum(d.amount), 0)
        FROM ledger_entries e LEFT JOIN lot_draws d ON d.ledger_entry_id = e.id
        LEFT JOIN credit_lots l ON l.id = d.lot_id
        WHERE e.kind <> 'usage'
        GROUP BY e.id, e.kind, e.amount, e.user_id
        HAVING coalesce(sum(d.amount), 0) <> greatest(-e.amount, 0) OR bool_or(l.user_id <> e.user_id)
    """,
    "10 nothing is drawn from a lot after it expired, but by the capture of a hold placed before": """
        SELECT 'draw ' || d.id, d.amount || ' from lot ' || l.id || ' expired at ' || l.expires_at
               || ', drawn at ' || d.created_at
        FROM lot_draws d JOIN credit_lots l ON l.id = d.lot_id
        LEFT JOIN usage_logs u ON u.id = d.usage_log_id
        LEFT JOIN holds h ON h.usage_log_id = u.id
        LEFT JOIN ledger_entries e ON e.id = d.ledger_entry_id
        WHERE l.expires_at IS NOT NULL AND coalesce(u.created_at, e.created_at) > l.expires_at
          AND coalesce(e.kind, '') <> 'expiry'
          AND NOT coalesce(h.created_at < l.expires_at, false)
    """,
    "10 a refund draws only from its order's paid lot; no paid lot expires": """
        SELECT 'draw ' || d.id, e.kind || ' from a ' || l.category || ' lot ' || l.id
        FROM lot_draws d JOIN ledger_entries e ON e.id = d.ledger_entry_id JOIN credit_lots l ON l.id = d.lot_id
        LEFT JOIN refunds r ON r.id = e.refund_id
        LEFT JOIN ledger_entries credit ON credit.id = l.ledger_entry_id
        WHERE (e.kind = 'refund' AND credit.payment_transaction_id IS DISTINCT FROM r.payment_transaction_id)
           OR (e.kind = 'expiry' AND l.category = 'paid')
    """,
    "10 a lot's money set aside is its order's pending refunds": """
        SELECT 'lot ' || l.id, 'reserved ' || l.reserved || ' but pending refunds of its order ' || coalesce(r.total, 0)
        FROM credit_lots l JOIN ledger_entries credit ON credit.id = l.ledger_entry_id
        LEFT JOIN (SELECT payment_transaction_id, sum(amount) AS total FROM refunds WHERE status = 'pending'
                   GROUP BY 1) r ON r.payment_transaction_id = credit.payment_transaction_id
        WHERE l.reserved <> coalesce(r.total, 0)
    """,
    "21 a subscription's periods are 1 to n, the last its current one": """
        SELECT 'subscription ' || s.id, s.periods || ' period(s) but ' || count(p.id) || ' sold, the last '
               || coalesce(max(p.n)::text, 'none')
        FROM subscriptions s LEFT JOIN subscription_periods p ON p.subscription_id = s.id
        GROUP BY s.id, s.periods
        HAVING count(p.id) <> s.periods OR max(p.n) <> s.periods
        UNION ALL
        SELECT 'subscription ' || s.id, 'current period ' || s.current_period_start || ' to ' || s.current_period_end
               || ' but period ' || p.n || ' runs ' || p.starts_at || ' to ' || p.ends_at
        FROM subscriptions s JOIN subscription_periods p ON p.subscription_id = s.id AND p.n = s.periods
        WHERE (p.starts_at, p.ends_at) <> (s.current_period_start, s.current_period_end)
    """,
    "21 each period of a subscription is charged once, at its price, as subscription:<id>:<n>": """
        SELECT 'subscription ' || s.id || ' period ' || p.n,
               coalesce('charge ' || u.request_id || ' of ' || u.amount || ' (' || u.model || ')', 'no charge')
               || ', sold at ' || p.price
        FROM subscription_periods p
        JOIN subscriptions s ON s.id = p.subscription_id
        JOIN plans pl ON pl.id = s.plan_id
        LEFT JOIN usage_logs u ON u.id = p.usage_log_id
        WHERE u.id IS NULL OR u.user_id <> s.user_id OR u.amount <> p.price OR u.model <> 'plan:' || pl.code
           OR u.request_id <> 'subscription:' || s.id || ':' || p.n
        UNION ALL
        SELECT 'usage ' || u.id, u.request_id || ' charged ' || u.amount || ' (' || u.model || ') for no period'
        FROM usage_logs u
        WHERE u.model LIKE 'plan:%' AND u.request_id LIKE 'subscription:%'
          AND NOT EXISTS (SELECT 1 FROM subscription_periods p WHERE p.usage_log_id = u.id)
    """,
    "21 each period's allowance is granted once, a plan lot of its person expiring at the period's end": """
        SELECT 'subscription ' || s.id || ' period ' || p.n,
               count(e.id) || ' grant(s) of ' || coalesce(string_agg(e.amount::text, ', '), 'nothing')
               || ', allowance ' || p.allowance || ', lot expiring ' || coalesce(max(l.expires_at)::text, 'never')
        FROM subscription_periods p
        JOIN subscriptions s ON s.id = p.subscription_id
        LEFT JOIN ledger_entries e ON e.subscription_period_id = p.id
        LEFT JOIN credit_lots l ON l.ledger_entry_id = e.id
        GROUP BY s.id, p.id, p.n, p.allowance, p.ends_at, s.user_id
        HAVING count(e.id) <> 1 OR count(l.id) <> 1 OR min(e.amount) <> p.allowance
            OR NOT bool_and(e.user_id = s.user_id AND e.kind = 'plan' AND l.category = 'plan')
            OR max(l.expires_at) IS DISTINCT FROM p.ends_at
    """,
    "derived: hourly usage sums equal the usage logs": """
        SELECT coalesce(l.user_id, h.user_id)::text || ' ' || coalesce(l.hour, h.hour)
               || ' ' || coalesce(l.model, h.model),
               'logs ' || coalesce(l.n, 0) || ' / ' || coalesce(l.total, 0)
               || ' but sums ' || coalesce(h.count, 0) || ' / ' || coalesce(h.amount, 0)
        FROM (SELECT user_id, date_trunc('hour', created_at, 'UTC') AS hour, model, count(*) AS n, sum(amount) AS total
              FROM usage_logs GROUP BY 1, 2, 3) l
        FULL JOIN usage_hourly h ON (h.user_id, h.hour, h.model) = (l.user_id, l.hour, l.model)
        WHERE l.n IS DISTINCT FROM h.count OR l.total IS DISTINCT FROM h.amount
    """,
}


# Not breaches of the books, but signs that something that keeps them is not running.
WARNINGS: dict[str, str] = {
    "active holds long past their expiry (is the expiry job running?)": """
        SELECT 'hold ' || id, 'expired at ' || expires_at || ' but still active'
        FROM holds WHERE status = 'active' AND expires_at < now() - interval '2 minutes'
    """,
    "credit lots past their expiry for over 2 minutes with money no hold needs (is the expiry job running?)": """
        SELECT 'lot ' || l.id, l.remaining || ' left, expired at ' || l.expires_at
        FROM credit_lots l
        WHERE l.remaining > 0 AND l.expires_at < now() - interval '2 minutes'
          AND l.remaining > coalesce((SELECT sum(h.amount) FROM holds h WHERE h.user_id = l.user_id
                                      AND h.status = 'active' AND h.created_at < l.expires_at), 0)
        ORDER BY l.expires_at LIMIT 20
    """,
    "subscriptions past their period's end for over 2 minutes (is the renewal job running?)": """
        SELECT 'subscription ' || id, status || ', its period ended at ' || current_period_end
        FROM subscriptions
        WHERE status IN ('active', 'cancelled') AND current_period_end < now() - interval '2 minutes'
        ORDER BY current_period_end LIMIT 20
    """,
    "events due for over 10 minutes (is a worker running, and does EVENTS_URL answer 2xx?)": """
        SELECT 'event ' || id, type || ', ' || attempts || ' attempt(s), last: ' || coalesce(last_error, 'none')
        FROM events WHERE status = 'pending' AND created_at < now() - interval '10 minutes'
        ORDER BY created_at LIMIT 20
    """,
    "events given up after 24 hours (flask events replay --since ... sends them again)": """
        SELECT 'event ' || id, type || ' of ' || created_at || ', last: ' || coalesce(last_error, 'none')
        FROM events WHERE status = 'abandoned' ORDER BY created_at DESC LIMIT 20
    """,
    "refunds whose outcome is unknown for over 10 minutes (resolve them on /admin/orders)": """
        SELECT 'refund ' || id, amount || ' of order ' || payment_transaction_id || ', pending since ' || created_at
        FROM refunds WHERE status = 'pending' AND created_at < now() - interval '10 minutes'
        ORDER BY created_at LIMIT 20
    """,
}


def find_warnings(session: Session, *, events_sent: bool = True) -> Iterator[Breach]:
    """Yield what looks wrong without breaking an invariant. With `events_sent` False (EVENTS_URL
    empty) events wait by design, and are not reported."""
    for concern, sql in WARNINGS.items():
        if not events_sent and concern.startswith("events "):
            continue
        for subject, detail in session.execute(text(sql)):
            yield Breach(invariant=concern, subject=subject, detail=detail)


def find_breaches(session: Session, progress: Callable[[str], None] | None = None) -> Iterator[Breach]:
    """Yield every breach of the invariants (nothing when the books are sound)."""
    for invariant, sql in CHECKS.items():
        if progress:
            progress(invariant)
        for subject, detail in session.execute(text(sql)):
            yield Breach(invariant=invariant, subject=subject, detail=detail)
