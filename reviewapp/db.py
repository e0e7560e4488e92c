"""Database plumbing: declarative base, engine and the request-scoped session.

The app owns one :class:`Database`; ``db.session`` is the session of the current application
context (created on first use, closed at teardown). Services only ``flush``; the single commit
point is :func:`Database.commit`, called at the end of a request, job or CLI command. It runs the
after-commit callbacks (job enqueues) registered during the transaction, so nothing is enqueued for
a change that was rolled back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, g, has_app_context
from sqlalchemy import JSON, DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored timezone-aware and always returned in UTC.

    SQLite keeps no zone, so values are normalised to UTC on the way in and marked UTC on the
    way out. Naive datetimes are refused (ValueError): every timestamp in the product is UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of every model, with stable constraint names for Alembic."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


AfterCommit = Callable[[], None]


class _State:
    """Per-app engine and session factory (an app owns its own; several apps may coexist)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessionmaker: sessionmaker[Session] = sessionmaker(bind=engine, expire_on_commit=False)


class Database:
    """Facade over the current app's engine and request-scoped session (see :meth:`init_app`)."""

    def init_app(self, app: Flask) -> None:
        """Create the engine from ``app.config['DATABASE_URL']`` (no connection is opened).

        PostgreSQL pools hold DB_POOL_SIZE connections plus up to DB_MAX_OVERFLOW more per
        process; DB_CONNECT_TIMEOUT_SECONDS bounds each connection attempt.
        """
        url = app.config["DATABASE_URL"]
        kwargs: dict[str, Any] = {"echo": app.config.get("SQL_ECHO", False)}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # pre-ping replaces connections that died with a PostgreSQL restart; the connect
            # timeout makes requests fail fast (503) while the database is unreachable
            kwargs.update(
                pool_pre_ping=True,
                pool_size=int(app.config.get("DB_POOL_SIZE", 10)),
                max_overflow=int(app.config.get("DB_MAX_OVERFLOW", 10)),
            )
            if url.startswith("postgresql"):
                # JIT compiling a plan costs tens to thousands of ms and never pays off for the
                # short queries of a web request (measured on claim-next at 1M applications)
                kwargs["connect_args"] = {
                    "connect_timeout": int(app.config.get("DB_CONNECT_TIMEOUT_SECONDS", 5)),
                    "options": "-c jit=off",
                }
        engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(engine, "connect", _sqlite_pragmas)
        app.extensions["reviewapp_db"] = _State(engine)
        app.teardown_appcontext(self._teardown)

    @staticmethod
    def state(app: Flask | None = None) -> _State:
        """The engine/session-factory holder of ``app`` (default: the current app)."""
        from flask import current_app

        target = app or current_app
        return target.extensions["reviewapp_db"]  # type: ignore[no-any-return]

    @property
    def engine(self) -> Engine:
        """The current app's engine."""
        return self.state().engine

    @property
    def sessionmaker(self) -> sessionmaker[Session]:
        """The current app's session factory."""
        return self.state().sessionmaker

    @property
    def session(self) -> Session:
        """The session of the current application context."""
        if not has_app_context():
            raise RuntimeError("db.session needs an application context")
        sess = g.get("_db_session")
        if sess is None:
            sess = self.sessionmaker()
            sess.info["after_commit"] = []
            g._db_session = sess
        return sess

    def after_commit(self, callback: AfterCommit) -> None:
        """Run ``callback`` once the current transaction commits; drop it on rollback."""
        self.session.info.setdefault("after_commit", []).append(callback)

    def commit(self) -> None:
        """Commit the current session, then run the registered after-commit callbacks in order."""
        sess = self.session
        sess.commit()
        callbacks: list[AfterCommit] = sess.info.get("after_commit", [])
        sess.info["after_commit"] = []
        for callback in callbacks:
            callback()

    def rollback(self) -> None:
        """Roll back the current session and forget its after-commit callbacks."""
        sess = self.session
        sess.rollback()
        sess.info["after_commit"] = []

    def _teardown(self, exc: BaseException | None) -> None:
        sess = g.pop("_db_session", None)
        if sess is not None:
            sess.close()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


#: what a user is told when a concurrent request changed the same thing first
CONCURRENT_WRITE_MESSAGE = (
    "Someone else changed this at the same moment, so nothing of yours was saved. "
    "Reload to see the current state and try again."
)


def is_unique_violation(exc: IntegrityError) -> bool:
    """True when ``exc`` is a unique-constraint violation (PostgreSQL SQLSTATE 23505, or
    SQLite's "UNIQUE constraint failed"): two requests inserted the same thing at once."""
    if getattr(exc.orig, "sqlstate", None) == "23505":
        return True
    return "UNIQUE constraint failed" in str(exc.orig)


@contextmanager
def concurrent_writes_as_conflicts(message: str = CONCURRENT_WRITE_MESSAGE) -> Iterator[None]:
    """Turn the two ways a concurrent writer shows up at flush or commit into a
    :class:`~reviewapp.errors.ConflictError` (409), which views already answer with their form
    and its text kept: a version counter that matched no row (``StaleDataError``: the row was
    changed and committed by another request since it was read) and a unique-constraint
    violation (the same appeal, decision or key inserted twice at once). Other integrity errors
    are bugs and propagate unchanged. The caller rolls the session back, as for any
    DomainError.
    """
    from reviewapp.errors import ConflictError

    try:
        yield
    except StaleDataError:
        raise ConflictError(message) from None
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        raise ConflictError(message) from None


def is_postgres(session: Session) -> bool:
    """True when ``session`` is bound to PostgreSQL (enables SKIP LOCKED and full-text search)."""
    bind = session.get_bind()
    return bind.dialect.name == "postgresql"


def recreate_postgres_database(url: str) -> None:
    """Drop (closing its connections) and create the PostgreSQL database named in ``url``.

    For test runs and benchmarks, which each own a database; never used by the app itself.
    """
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
