"""`/admin`: the back office (SPEC 13), for admins only: everyone else, signed in or not, gets 404
(web.auth.guard_back_office, before CSRF and routing could tell them apart).

Every action is a POST with CSRF and a required reason, shown first as a confirmation step with
its effect; services.admin (and refunds, codes) do the work and write the audit rows.
"""

from flask import Blueprint
from flask_babel import gettext as _

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.context_processor
def _sections() -> dict[str, object]:
    """The back office's tabs: (endpoint, label, the endpoints that show it active: its pages and the
    confirmation steps of their actions)."""
    return {
        "admin_sections": [
            ("admin.home", _("Overview"), {"admin.home"}),
            (
                "admin.people",
                _("People"),
                {"admin.people", "admin.person", "admin.adjust", "admin.sign_out", "admin.disable", "admin.enable"},
            ),
            (
                "admin.orders",
                _("Orders"),
                {"admin.orders", "admin.order", "admin.check", "admin.mark_paid", "admin.refund", "admin.resolve"},
            ),
            (
                "admin.codes",
                _("Codes"),
                {
                    "admin.codes",
                    "admin.code_batch",
                    "admin.create_code_batch",
                    "admin.disable_code_batch",
                    "admin.disable_code",
                },
            ),
            ("admin.audit", _("Audit"), {"admin.audit"}),
        ]
    }


from ledger.blueprints.backoffice import audit, codes, orders, overview, people  # noqa: E402, F401 - their routes join bp
