"""Engine and transaction helpers, and the programmatic Alembic upgrade run at start-up.

SQLite (the default) is opened in WAL mode with a busy timeout, and write transactions start with
``BEGIN IMMEDIATE`` (:func:`write_tx`) so concurrent writer processes queue on the database lock
instead of failing with ``SQLITE_BUSY`` when a read transaction upgrades to a write. On PostgreSQL the
same code runs with ordinary transactions.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITERS: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def make_engine(database_url: str) -> Engine:
    """Create the SQLAlchemy engine for ``database_url``.

    For SQLite: creates the parent folder of the file, enables WAL, ``busy_timeout`` (30 s),
    ``foreign_keys`` and ``synchronous=NORMAL``, and makes the driver leave transaction control to
    SQLAlchemy so :func:`write_tx` can issue ``BEGIN IMMEDIATE``.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, future=True)

    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event below emits BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


@contextmanager
def write_tx(engine: Engine) -> Iterator[Session]:
    """A session in one write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
    writer = _WRITERS.get(engine)
    if writer is None:
        writer = _WRITERS[engine] = engine.execution_options(sqlite_begin="IMMEDIATE")
    with Session(writer, expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def read_tx(engine: Engine) -> Iterator[Session]:
    """A session for reads (deferred transaction), closed at the end."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def alembic_config(engine: Engine) -> Config:
    """Alembic configuration without an ``alembic.ini``: migrations live inside the package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade_database(engine: Engine) -> None:
    """Apply all migrations (``alembic upgrade head``); a no-op when the schema is current."""
    command.upgrade(alembic_config(engine), "head")


class SchemaOutdated(RuntimeError):
    """The database schema is not at the newest migration (run ``cadenza db upgrade`` or ``cadenza serve``)."""


def check_schema(engine: Engine) -> None:
    """Raise :class:`SchemaOutdated` unless the database is at the newest migration (read-only check)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current != head:
        raise SchemaOutdated(
            f"the database {engine.url.render_as_string(hide_password=True)} is at schema {current or 'none'}, "
            f"not {head}: run `cadenza db upgrade` (or start `cadenza serve`) first"
        )
