from flask_babel import lazy_gettext as _l
from wtforms import EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Optional

from ledger.services.people.sign_in import EMAIL_MAX_LENGTH, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from ledger.web.parsing import TextForm


def _strip(value: str | None) -> str | None:
    return value.strip() if value else value


ENTER_EMAIL = DataRequired(message=_l("Enter your email address."))
ENTER_PASSWORD = DataRequired(message=_l("Enter your password."))


class LoginForm(TextForm):
    email = EmailField(
        _l("Email"),
        filters=[_strip],
        validators=[
            ENTER_EMAIL,
            Length(max=EMAIL_MAX_LENGTH, message=_l("An email address has at most %(max)d characters.")),
        ],
    )
    password = PasswordField(
        _l("Password"),
        validators=[
            ENTER_PASSWORD,
            Length(max=PASSWORD_MAX_LENGTH, message=_l("A password has at most %(max)d characters.")),
        ],
    )
    submit = SubmitField(_l("Sign in"))


class RegisterForm(TextForm):
    # The email's and the password's rules are the service's (accounts.register_user): checked there once.
    email = EmailField(_l("Email"), filters=[_strip], validators=[ENTER_EMAIL])
    password = PasswordField(
        _l("Password"),
        validators=[ENTER_PASSWORD],
        description=_l("At least %(n)d characters.", n=PASSWORD_MIN_LENGTH),
    )
    invite = StringField(
        _l("Invite code (optional)"),
        filters=[_strip],
        validators=[Optional(), Length(max=16, message=_l("An invite code has at most 16 characters."))],
    )
    submit = SubmitField(_l("Create account"))
