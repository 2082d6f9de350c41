from flask_babel import lazy_gettext as _l
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo

from ledger.services.people.sign_in import PASSWORD_MIN_LENGTH
from ledger.web.parsing import Form, TextForm


class PasswordForm(TextForm):
    # The new password's rules are the service's (accounts.change_password): checked there once.
    current = PasswordField(
        _l("Current password"), validators=[DataRequired(message=_l("Enter your current password."))]
    )
    new = PasswordField(
        _l("New password"),
        validators=[DataRequired(message=_l("Enter a new password."))],
        description=_l("At least %(n)d characters.", n=PASSWORD_MIN_LENGTH),
    )
    confirm = PasswordField(
        _l("Repeat the new password"),
        validators=[
            DataRequired(message=_l("Repeat the new password.")),
            EqualTo("new", message=_l("The two passwords differ.")),
        ],
    )


def password_form(has_password: bool) -> PasswordForm:
    """The password form; without the current password for a person who has none yet (SPEC 25)."""
    form = PasswordForm()
    if not has_password:
        del form.current
    return form


class SessionsForm(Form):
    """Sign-out buttons: a CSRF token and nothing else."""
