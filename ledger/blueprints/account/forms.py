from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import SelectField, StringField, URLField
from wtforms.validators import Length, Optional

from ledger.web import TextForm


class ProfileForm(TextForm):
    username = StringField(
        _l("Username"),
        validators=[Optional(), Length(min=3, max=30)],
        description=_l("3 to 30 letters, digits, '_', '.' or '-'. Optional."),
    )
    full_name = StringField(_l("Full name"), validators=[Optional(), Length(max=100)])
    website = URLField(_l("Website"), validators=[Optional(), Length(max=200)], description=_l("http:// or https://"))
    # Choices are set by the view (the service owns the list); validated again by the service.
    timezone = SelectField(
        _l("Time zone"), validate_choice=False, description=_l("Times and days are shown and counted in this zone.")
    )


class AvatarForm(FlaskForm):
    avatar = FileField(_l("Avatar"), validators=[FileRequired()], description=_l("PNG, JPEG or WebP, at most 2 MB."))
