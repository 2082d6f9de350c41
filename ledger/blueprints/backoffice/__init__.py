"""`/admin`: the back office (SPEC 13), for admins only: everyone else, signed in or not, gets 404
(web.auth.guard_back_office, before CSRF and routing could tell them apart).

Every action is a POST with CSRF and a required reason, shown first as a confirmation step with
its effect; services.backoffice (and payments.refunds, growth.code_batches, growth.plans) do the work
and write the audit rows.
"""

from ledger.blueprints.backoffice import audit, codes, orders, overview, people, plans  # noqa: F401 - their routes join bp
from ledger.blueprints.backoffice.blueprint import bp

__all__ = ["bp"]
