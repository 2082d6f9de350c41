from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, FileRequired
from wtforms import SelectField, StringField, URLField

from ledger.web.parsing import Form, TextForm


class ProfileForm(TextForm):
    # Each field's rules are the service's (profile.update_profile): checked there once.
    username = StringField(_l("Username"), description=_l("3 to 30 letters, digits, '_', '.' or '-'. Optional."))
    full_name = StringField(_l("Full name"))
    website = URLField(_l("Website"), description=_l("http:// or https://"))
    # Choices are set by the view (the service owns the list).
    timezone = SelectField(
        _l("Time zone"), validate_choice=False, description=_l("Times and days are shown and counted in this zone.")
    )


class AvatarForm(Form):
    avatar = FileField(
        _l("Avatar"),
        validators=[FileRequired(message=_l("Choose an image file."))],
        description=_l("PNG, JPEG or WebP, at most 2 MB."),
    )


class AlertForm(TextForm):
    # The rules are the service's (low_balance.set_own_threshold); the view says what empty means.
    low_balance_threshold = StringField(_l("Warn me when my available balance falls below (¥)"))


class LimitsForm(TextForm):
    # The rules are the service's (limits.set_limits); empty clears a limit.
    day = StringField(_l("Daily spending limit (¥)"))
    month = StringField(_l("Monthly spending limit (¥)"))
