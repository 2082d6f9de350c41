"""The back office's blueprint and its tabs; its routes join it from the modules beside this one."""

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
            (
                "admin.plans",
                _("Plans"),
                {"admin.plans", "admin.plan", "admin.create_plan", "admin.edit_plan", "admin.retire_plan"},
            ),
            ("admin.audit", _("Audit"), {"admin.audit"}),
        ]
    }
