"""An admin action in two steps: the effect shown for confirmation, then done (SPEC 13)."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask import render_template
from flask_babel import gettext as _

from ledger.blueprints.backoffice.forms import ActionForm
from ledger.money import format_amount
from ledger.web.parsing import submit


def confirm_then(form: ActionForm, preview: Callable[[], list[str]], act: Callable[[], Any], *, back: str) -> Any:
    """Check the form and preview the action's effect (lines such as "balance ¥12.00 -> ¥62.00");
    until the admin confirms, answer the confirmation page; then run it. A refusal at either step
    is shown on the confirmation page, with its status. Returns the action's result, or a page."""
    effect = submit(form, preview)
    if effect is None or not form.is_confirmed:
        page = render_template("admin/confirm.html", form=form, effect=effect, back=back)
        return page if effect is not None else (page, form.status)
    done = submit(form, act)
    if done is None:
        return render_template("admin/confirm.html", form=form, effect=effect, back=back), form.status
    return done


def balance_change(before: Decimal, after: Decimal) -> str:
    """A confirmation line: what the person's balance becomes."""
    return _("Balance ¥%(before)s → ¥%(after)s", before=format_amount(before), after=format_amount(after))
