"""Flask extensions, created unbound here and bound in :func:`reviewapp.create_app`."""

from flask_bootstrap import Bootstrap5
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from reviewapp.db import Database

db = Database()
login_manager = LoginManager()
csrf = CSRFProtect()
bootstrap = Bootstrap5()
