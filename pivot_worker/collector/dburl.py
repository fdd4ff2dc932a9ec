"""``PIVOT_DATABASE_URL`` in the forms people write, mapped to SQLAlchemy's async drivers.

``sqlite:///relative/file.sqlite3`` (relative to the working directory), ``sqlite:////abs/file``,
``postgresql://user:pass@host:5432/db`` (also ``postgres://``); on PostgreSQL ``?schema=NAME`` puts
the tables in that (existing) schema instead of the connection's default. Forms that already name
an async driver (``sqlite+aiosqlite``, ``postgresql+asyncpg``) pass through.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..settings import SettingsError

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def async_database_url(text: str) -> URL:
    """Parse ``text`` and swap in the async driver; a clear ``SettingsError`` for anything else."""
    try:
        url = make_url(text.strip())
    except ArgumentError as exc:
        raise SettingsError(
            f"PIVOT_DATABASE_URL={_shown(text)!r} is not a database URL: expected "
            "sqlite:///path/to/file.sqlite3 or postgresql://user:pass@host:5432/db"
        ) from exc
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise SettingsError(
            f"PIVOT_DATABASE_URL uses {url.drivername!r}, which is not supported: "
            "use sqlite:///path/to/file.sqlite3 or postgresql://user:pass@host:5432/db"
        )
    if driver.startswith("sqlite") and not url.database:
        raise SettingsError(
            "PIVOT_DATABASE_URL names no SQLite file: write sqlite:///path/to/file.sqlite3 "
            "(three slashes, then a path relative to the working directory)"
        )
    if driver.startswith("postgresql") and not url.database:
        raise SettingsError("PIVOT_DATABASE_URL names no PostgreSQL database: add /<database> after the host")
    return url.set(drivername=driver)


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _shown(text: str) -> str:
    _head, sep, tail = text.rpartition("@")
    return f"***@{tail}" if sep else text


def split_schema(url: URL) -> tuple[URL, str | None]:
    """Take ``?schema=NAME`` off a PostgreSQL URL; the driver would reject it as a connect argument."""
    schema = url.query.get("schema")
    if schema is None:
        return url, None
    if isinstance(schema, tuple):
        schema = schema[-1]
    if is_sqlite(url):
        raise SettingsError("PIVOT_DATABASE_URL: ?schema= applies to PostgreSQL only")
    if not schema:
        raise SettingsError("PIVOT_DATABASE_URL: ?schema= needs a schema name")
    return url.difference_update_query(["schema"]), schema
