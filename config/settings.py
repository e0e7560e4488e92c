"""Settings classes for reviewapp.

`create_app(config="development")` picks one of the classes below by name; afterwards any
`REVIEWAPP_*` environment variable overrides a key (``REVIEWAPP_DATABASE_URL`` sets
``DATABASE_URL``). Nothing here reads the environment at import time.
"""

from __future__ import annotations


class Default:
    """Embedded default: SQLite file in ``instance/``, jobs run inline, console email."""

    SECRET_KEY: str | None = (
        None  # generated per instance when unset (see reviewapp.configure_secret)
    )
    DATABASE_URL: str | None = None  # None -> sqlite:///<instance>/reviewapp.sqlite3
    REDIS_URL: str | None = None  # None -> jobs run inline after commit
    RQ_QUEUE_PREFIX = "reviewapp"
    SQL_ECHO = False
    # SQLAlchemy connection pool of each process (PostgreSQL only). Every gunicorn worker and RQ
    # worker holds up to DB_POOL_SIZE + DB_MAX_OVERFLOW connections: keep the sum over all
    # processes below PostgreSQL's max_connections (docs/deploy.md).
    DB_POOL_SIZE = 10
    DB_MAX_OVERFLOW = 10
    DB_CONNECT_TIMEOUT_SECONDS = 5  # a request fails after this when PostgreSQL is unreachable
    # /readyz: each check (database SELECT 1, Redis PING) gives up after this many seconds
    HEALTH_CHECK_TIMEOUT_SECONDS = 2
    # Reverse proxies in front of the app that set X-Forwarded-For/-Proto/-Host/-Port (werkzeug
    # ProxyFix trusts exactly this many hops). 0: headers are ignored (direct exposure, tests).
    TRUSTED_PROXIES = 0
    # Logs: "text" (plain lines, development) or "json" (one JSON object per line: the request
    # log line carries request_id, method, path, status, duration_ms and user_id)
    LOG_FORMAT = "text"
    LOG_LEVEL = "INFO"
    # `flask sweep` marks a running backtest failed when none of its chunk jobs reported progress
    # for this long (its worker died). Must exceed the chunk job timeout (600 s).
    BACKTEST_STALL_SECONDS = 15 * 60
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
    MAX_CLAIMS_PER_REVIEWER = 20  # unexpired claims one reviewer may hold at once
    # a resubmission waits this long (wall-clock seconds after it is queued) for the reviewer
    # who asked for the mitigations before claim-next offers it to anyone else
    PREFERRED_REVIEWER_HOLD_SECONDS = 8 * 3600
    # business calendar of the SLA clocks (days, hours, holidays, reference time zone)
    BUSINESS_HOURS_FILE: str | None = None  # None -> <SEED_DIR>/business_hours.yaml
    PAGE_SIZE = 50
    API_MAX_PER_PAGE = 100
    IDEMPOTENCY_TTL_SECONDS = 24 * 3600  # how long an Idempotency-Key is remembered
    MAIL_BACKEND = "console"  # console | file | smtp
    MAIL_FILE_DIR: str | None = None  # for the file backend; default <instance>/mail
    MAIL_FROM = "reviewapp@localhost"
    SMTP_HOST = "localhost"
    SMTP_PORT = 25
    BASE_URL = "http://localhost:5000"
    BOOTSTRAP_SERVE_LOCAL = True
    # Webhooks (reviewapp/webhooks): per-attempt socket timeout, retry window after an event,
    # exponential backoff (base doubles per failed attempt, capped), and how long a delivery may
    # stay "sending" before the sweeper decides its worker died (must exceed one attempt)
    WEBHOOK_TIMEOUT_SECONDS = 10
    WEBHOOK_RETRY_WINDOW_SECONDS = 24 * 3600
    WEBHOOK_BACKOFF_BASE_SECONDS = 30
    WEBHOOK_BACKOFF_MAX_SECONDS = 3600
    WEBHOOK_SENDING_LEASE_SECONDS = 120
    # endpoints must be https:// on public addresses; True also allows http:// to localhost /
    # 127.0.0.1 / [::1] (local test receivers only, never in production)
    WEBHOOK_ALLOW_HTTP_LOCALHOST = False
    # Rate limits (reviewapp.ratelimit). Values are Flask-Limiter strings, "<count> per <second|
    # minute|hour|day>", read on every request. Counts live in RATELIMIT_STORAGE_URI, else in
    # REDIS_URL (one count shared by every web process), else in process memory (embedded default).
    RATELIMIT_ENABLED = True
    RATELIMIT_STORAGE_URI: str | None = None  # None -> REDIS_URL -> memory://
    RATELIMIT_KEY_PREFIX = "reviewapp-ratelimit"  # namespace of the counters in Redis
    RATELIMIT_API = "300 per minute"  # API requests per token (per client address without one)
    RATELIMIT_API_IP = "600 per minute"  # API requests per client address, whatever the token
    RATELIMIT_LOGIN = "10 per minute"  # log-in attempts (POST) per client address
    RATELIMIT_LOGIN_ACCOUNT = "20 per hour"  # log-in attempts (POST) per submitted email
    RATELIMIT_REGISTER = "10 per hour"  # sign-up attempts (POST) per client address
    RATELIMIT_PASSWORD_RESET_ACCOUNT = "5 per hour"  # noqa: S105 (a rate, not a password): reset-link requests per submitted email
    PASSWORD_RESET_MAX_AGE_SECONDS = 3600  # a password-reset link works this long, once
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
    # Rate limits stay on with the default numbers; tests of the limits build their own app with
    # small ones. Counters kept in Redis go under their own prefix (tests add a unique suffix).
    RATELIMIT_KEY_PREFIX = "reviewapp-test-ratelimit"
    WEBHOOK_ALLOW_HTTP_LOCALHOST = True  # tests run their webhook receivers on 127.0.0.1


class Production(Default):
    """Production: PostgreSQL and Redis are required; cookies are Secure; HTTPS forced."""

    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    FORCE_HTTPS = True
    MAIL_BACKEND = "smtp"
    LOG_FORMAT = "json"


CONFIGS = {
    "default": Default,
    "development": Development,
    "testing": Testing,
    "production": Production,
}
