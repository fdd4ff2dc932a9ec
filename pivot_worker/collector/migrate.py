"""Schema creation and migration on start, safe when several collectors start at once.

The schema carries a version number in ``pivot_debug_schema``. Start-up creates missing tables,
then applies each step of :data:`STEPS` above the stored version, all in one transaction; on
PostgreSQL an advisory lock serialises concurrent starts. A database written by a newer collector
is refused rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import metadata, schema_version

SCHEMA_VERSION = 1
_LOCK_KEY = 0x70_69_76_6F_74  # "pivot"

# STEPS[n] upgrades a version-n database to version n+1 (synchronous DDL, run through run_sync).
STEPS: dict[int, Callable[[sa.Connection], None]] = {}


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer collector than this one."""


async def migrate(conn: AsyncConnection) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION` inside the caller's transaction; return the old version."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    await conn.run_sync(metadata.create_all)
    found = (await conn.execute(sa.select(schema_version.c.version).where(schema_version.c.id == 1))).scalar()
    if found is None:
        await conn.execute(sa.insert(schema_version).values(id=1, version=SCHEMA_VERSION))
        return 0
    if found > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"the debug database has schema version {found}, newer than this collector's "
            f"{SCHEMA_VERSION}: upgrade pivot-worker on this host"
        )
    for version in range(found, SCHEMA_VERSION):
        await conn.run_sync(STEPS[version])
    if found != SCHEMA_VERSION:
        await conn.execute(
            sa.update(schema_version).where(schema_version.c.id == 1).values(version=SCHEMA_VERSION)
        )
    return int(found)
