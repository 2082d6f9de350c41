"""Flask extensions, created here and bound to the app in create_app()."""

from flask_babel import Babel
from flask_bootstrap import Bootstrap5
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

babel = Babel()
bootstrap = Bootstrap5()
csrf = CSRFProtect()
login_manager = LoginManager()
# Per-IP by default; login adds a per-account key. Storage: RATELIMIT_STORAGE_URI (Redis in production).
limiter = Limiter(key_func=get_remote_address)
