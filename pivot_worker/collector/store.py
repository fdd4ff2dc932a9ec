"""The debug-event store: the only SQL in the project, one code path for SQLite and PostgreSQL.

Writes are batched (one transaction per batch) and idempotent: events are inserted with
"on conflict do nothing" on ``event_id`` and call summaries are merged with order-independent
rules (:mod:`pivot_worker.collector.summary`), so a redelivered batch changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .dburl import async_database_url, is_sqlite, split_schema
from .migrate import migrate
from .summary import CallSummary, account_of, event_failed, key_to_created, order_key, summarise
from .tables import calls, events

logger = logging.getLogger(__name__)

PURGE_CHUNK = 5000
SQLITE_BUSY_TIMEOUT_MS = 10_000


@dataclass(frozen=True, slots=True)
class CallRow:
    """One row of the list endpoint: a call's summary."""

    account_id: str
    call_id: str
    first_key: int
    node: str
    iteration: int
    uri: str | None
    status_code: str | None
    reason: str | None
    has_json_errors: bool
    has_schema_errors: bool
    failed: bool

    @property
    def created(self) -> int:
        return key_to_created(self.first_key)


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; these columns are identifiers, so a replacement is harmless.
    return text.replace("\x00", "\ufffd")


class Store:
    """Async access to the debug tables; open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert: Any = sqlite.insert if engine.dialect.name == "sqlite" else postgresql.insert

    @classmethod
    async def open(cls, database_url: str, *, schema: str | None = None) -> Store:
        """Connect, create or migrate the schema, and return a ready store.

        ``schema`` (PostgreSQL only; or ``?schema=`` in the URL) puts the tables in that schema,
        which must exist; tests use it to stay apart from each other.
        """
        url, url_schema = split_schema(async_database_url(database_url))
        schema = schema or url_schema
        engine = create_async_engine(url, pool_pre_ping=not is_sqlite(url))
        if is_sqlite(url):
            sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if schema is not None:
            engine = engine.execution_options(schema_translate_map={None: schema})
        store = cls(engine)
        try:
            async with engine.begin() as conn:
                old = await migrate(conn)
        except BaseException:
            await engine.dispose()
            raise
        logger.info("debug store ready on %s (schema version was %d)", url.render_as_string(), old)
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        """A trivial query (for ``/healthz``); raises when the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    # -- writing ------------------------------------------------------------------------------

    async def write(self, batch: Sequence[dict[str, Any]]) -> None:
        """Store ``batch`` in one transaction; events already stored are left as they are."""
        if not batch:
            return
        rows = sorted((self._event_row(e) for e in batch), key=lambda r: str(r["event_id"]))
        summaries = sorted(summarise(list(batch)), key=lambda s: (s.account_id, s.call_id))
        async with self.engine.begin() as conn:
            stmt = self._insert(events).on_conflict_do_nothing(index_elements=[events.c.event_id])
            await conn.execute(stmt, rows)
            await conn.execute(self._merge_calls(), [self._summary_row(s) for s in summaries])

    @staticmethod
    def _event_row(event: dict[str, Any]) -> dict[str, Any]:
        return {
            "event_id": str(event["event_id"]),
            "account_id": _clean(account_of(event)),
            "call_id": _clean(str(event["call_id"])),
            "iteration": int(event["iteration"]),
            "seq": int(event["seq"]),
            "event_type": str(event["event_type"]),
            "created": int(event["created"]),
            "unix_time_us": int(event["unix_time_us"]),
            "failed": event_failed(event),
            "doc": orjson.dumps(event).decode(),
        }

    @staticmethod
    def _summary_row(summary: CallSummary) -> dict[str, Any]:
        row = summary.row()
        row["account_id"] = _clean(row["account_id"])
        row["call_id"] = _clean(row["call_id"])
        return row

    def _merge_calls(self) -> Any:
        stmt = self._insert(calls)
        new = stmt.excluded
        c = calls.c

        def earliest(value: str, key: str) -> tuple[Any, Any]:
            take = sa.or_(c[key].is_(None), sa.and_(new[key].is_not(None), new[key] < c[key]))
            return sa.case((take, new[value]), else_=c[value]), sa.case((take, new[key]), else_=c[key])

        def latest(value: str, key: str) -> tuple[Any, Any]:
            take = sa.or_(c[key].is_(None), sa.and_(new[key].is_not(None), new[key] > c[key]))
            return sa.case((take, new[value]), else_=c[value]), sa.case((take, new[key]), else_=c[key])

        first = new.first_key < c.first_key
        uri, uri_key = earliest("uri", "uri_key")
        status, status_key = earliest("status_code", "status_key")
        reason, reason_key = latest("reason", "reason_key")
        return stmt.on_conflict_do_update(
            index_elements=[c.account_id, c.call_id],
            set_={
                "first_key": sa.case((first, new.first_key), else_=c.first_key),
                "node": sa.case((first, new.node), else_=c.node),
                "last_key": sa.case((new.last_key > c.last_key, new.last_key), else_=c.last_key),
                "iteration": sa.case((new.iteration < c.iteration, new.iteration), else_=c.iteration),
                "uri": uri,
                "uri_key": uri_key,
                "status_code": status,
                "status_key": status_key,
                "reason": reason,
                "reason_key": reason_key,
                "has_json_errors": sa.or_(c.has_json_errors, new.has_json_errors),
                "has_schema_errors": sa.or_(c.has_schema_errors, new.has_schema_errors),
                "failed": sa.or_(c.failed, new.failed),
            },
        )

    # -- reading ------------------------------------------------------------------------------

    async def list_calls(
        self,
        account_id: str,
        *,
        from_key: int,
        to_key: int,
        descending: bool = True,
        limit: int = 50,
        start: tuple[int, str] | None = None,
        failed_only: bool = False,
    ) -> list[CallRow]:
        """Calls of ``account_id`` whose first event lies in ``[from_key, to_key]``, newest first.

        ``start`` is an inclusive cursor ``(first_key, call_id)``: the first row of the page.
        """
        c = calls.c
        query = sa.select(calls).where(
            c.account_id == account_id, c.first_key >= from_key, c.first_key <= to_key
        )
        if failed_only:
            query = query.where(c.failed.is_(True))
        if start is not None:
            key, call_id = start
            if descending:
                query = query.where(
                    sa.or_(c.first_key < key, sa.and_(c.first_key == key, c.call_id <= call_id))
                )
            else:
                query = query.where(
                    sa.or_(c.first_key > key, sa.and_(c.first_key == key, c.call_id >= call_id))
                )
        order = (c.first_key.desc(), c.call_id.desc()) if descending else (c.first_key.asc(), c.call_id.asc())
        query = query.order_by(*order).limit(limit)
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return [
                CallRow(
                    account_id=r.account_id,
                    call_id=r.call_id,
                    first_key=r.first_key,
                    node=r.node,
                    iteration=r.iteration,
                    uri=r.uri,
                    status_code=r.status_code,
                    reason=r.reason,
                    has_json_errors=bool(r.has_json_errors),
                    has_schema_errors=bool(r.has_schema_errors),
                    failed=bool(r.failed),
                )
                for r in result
            ]

    async def call_events(
        self,
        account_id: str,
        call_id: str,
        *,
        created_from: int | None = None,
        created_to: int | None = None,
        limit: int = 10_000,
    ) -> list[dict[str, Any]]:
        """Every stored event of one call, oldest first (Gregorian ``created`` bounds inclusive)."""
        e = events.c
        query = sa.select(e.doc).where(e.account_id == account_id, e.call_id == call_id)
        if created_from is not None:
            query = query.where(e.created >= created_from)
        if created_to is not None:
            query = query.where(e.created <= created_to)
        query = query.order_by(e.unix_time_us, e.seq, e.event_id).limit(limit)
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return [orjson.loads(doc) for (doc,) in result]

    async def count_events(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(events))).scalar_one())

    # -- retention ----------------------------------------------------------------------------

    async def purge(self, older_than_unix_us: int) -> tuple[int, int]:
        """Delete events older than the cutoff and calls whose last event is; return both counts.

        Deletes run in chunks of :data:`PURGE_CHUNK` rows so a large purge never holds long locks.
        """
        e, c = events.c, calls.c
        removed_events = removed_calls = 0
        while True:
            ids = sa.select(e.event_id).where(e.unix_time_us < older_than_unix_us).limit(PURGE_CHUNK)
            async with self.engine.begin() as conn:
                n = (
                    await conn.execute(sa.delete(events).where(e.event_id.in_(ids.scalar_subquery())))
                ).rowcount
            removed_events += n
            if n < PURGE_CHUNK:
                break
        cutoff_key = older_than_unix_us * 1000
        async with self.engine.begin() as conn:
            removed_calls = (await conn.execute(sa.delete(calls).where(c.last_key < cutoff_key))).rowcount
        return removed_events, removed_calls


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


__all__ = ["CallRow", "Store", "order_key"]
