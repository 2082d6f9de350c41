from flask_babel import lazy_gettext as _l
from wtforms import EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Email, Length, Optional

from ledger.services.accounts import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from ledger.web import TextForm


def _strip(value: str | None) -> str | None:
    return value.strip() if value else value


class LoginForm(TextForm):
    email = EmailField(_l("Email"), filters=[_strip], validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=PASSWORD_MAX_LENGTH)])
    submit = SubmitField(_l("Sign in"))


class RegisterForm(TextForm):
    email = EmailField(_l("Email"), filters=[_strip], validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(), Length(min=PASSWORD_MIN_LENGTH, max=PASSWORD_MAX_LENGTH)],
        description=_l("At least %(n)d characters.", n=PASSWORD_MIN_LENGTH),
    )
    invite = StringField(_l("Invite code (optional)"), filters=[_strip], validators=[Optional(), Length(max=16)])
    submit = SubmitField(_l("Create account"))
