"""Settings classes for reviewapp.

`create_app(config="development")` picks one of the classes below by name; afterwards any
`REVIEWAPP_*` environment variable overrides a key (``REVIEWAPP_DATABASE_URL`` sets
``DATABASE_URL``). Nothing here reads the environment at import time.
"""

from __future__ import annotations


class Default:
    """Embedded default: SQLite file in ``instance/``, jobs run inline, console email."""

    SECRET_KEY: str | None = None  # generated per instance when unset (see reviewapp.configure_secret)
    DATABASE_URL: str | None = None  # None -> sqlite:///<instance>/reviewapp.sqlite3
    REDIS_URL: str | None = None  # None -> jobs run inline after commit
    RQ_QUEUE_PREFIX = "reviewapp"
    SQL_ECHO = False
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = 8 * 3600  # seconds
    MAX_CONTENT_LENGTH = 1 * 1024 * 1024  # bytes of request body
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    FORCE_HTTPS = False
    # Flask-Login: "strong" drops a session whose client address/user agent changed
    SESSION_PROTECTION = "strong"
    LEASE_SECONDS = 30 * 60  # claim lease length
    # a resubmission waits this long (wall-clock seconds after it is queued) for the reviewer
    # who asked for the mitigations before claim-next offers it to anyone else
    PREFERRED_REVIEWER_HOLD_SECONDS = 8 * 3600
    # business calendar of the SLA clocks (days, hours, holidays, reference time zone)
    BUSINESS_HOURS_FILE: str | None = None  # None -> <SEED_DIR>/business_hours.yaml
    PAGE_SIZE = 50
    API_MAX_PER_PAGE = 100
    MAIL_BACKEND = "console"  # console | file | smtp
    MAIL_FILE_DIR: str | None = None  # for the file backend; default <instance>/mail
    MAIL_FROM = "reviewapp@localhost"
    SMTP_HOST = "localhost"
    SMTP_PORT = 25
    BASE_URL = "http://localhost:5000"
    BOOTSTRAP_SERVE_LOCAL = True
    # Tests (and the import command) replace these paths.
    SEED_DIR: str | None = None  # None -> <repo>/config


class Development(Default):
    """Local development: same as default, with template auto-reload."""

    TEMPLATES_AUTO_RELOAD = True


class Testing(Default):
    """Test runs. The test suite sets DATABASE_URL / REDIS_URL itself."""

    TESTING = True
    SECRET_KEY = "test-only-secret-key-not-for-production"  # noqa: S105
    MAIL_BACKEND = "memory"
    WTF_CSRF_ENABLED = True
    # Flask-Login's test client cannot forge the "strong" session identifier
    SESSION_PROTECTION = "basic"


class Production(Default):
    """Production: PostgreSQL and Redis are required; cookies are Secure; HTTPS forced."""

    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    FORCE_HTTPS = True
    MAIL_BACKEND = "smtp"


CONFIGS = {
    "default": Default,
    "development": Development,
    "testing": Testing,
    "production": Production,
}
