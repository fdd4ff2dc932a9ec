"""The collector's tables, written once here so SQLite and PostgreSQL get the same schema.

``pivot_debug_events`` holds every event as received (the JSON text, plus the columns that
queries filter and sort on). ``pivot_debug_calls`` holds one summary row per call, the list
endpoint's rows; it is merged from events with rules that give the same row whatever the order
or repetition of deliveries (see :mod:`pivot_worker.collector.summary`).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

schema_version = sa.Table(
    "pivot_debug_schema",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)

events = sa.Table(
    "pivot_debug_events",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("call_id", sa.Text, nullable=False),
    sa.Column("iteration", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("event_type", sa.String(16), nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
    sa.Column("unix_time_us", sa.BigInteger, nullable=False),
    sa.Column("failed", sa.Boolean, nullable=False),
    sa.Column("doc", sa.Text, nullable=False),
    sa.Index("pivot_debug_events_call", "account_id", "call_id", "unix_time_us"),
    sa.Index("pivot_debug_events_time", "unix_time_us"),
)

calls = sa.Table(
    "pivot_debug_calls",
    metadata,
    sa.Column("account_id", sa.Text, primary_key=True),
    sa.Column("call_id", sa.Text, primary_key=True),
    sa.Column("first_key", sa.BigInteger, nullable=False),
    sa.Column("last_key", sa.BigInteger, nullable=False),
    sa.Column("node", sa.Text, nullable=False),
    sa.Column("iteration", sa.Integer, nullable=False),
    sa.Column("uri_key", sa.BigInteger, nullable=True),
    sa.Column("uri", sa.Text, nullable=True),
    sa.Column("status_key", sa.BigInteger, nullable=True),
    sa.Column("status_code", sa.String(3), nullable=True),
    sa.Column("reason_key", sa.BigInteger, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("has_json_errors", sa.Boolean, nullable=False),
    sa.Column("has_schema_errors", sa.Boolean, nullable=False),
    sa.Column("failed", sa.Boolean, nullable=False),
    sa.Index("pivot_debug_calls_list", "account_id", "first_key", "call_id"),
    sa.Index("pivot_debug_calls_last", "last_key"),
)
