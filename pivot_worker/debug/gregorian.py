"""Kazoo's clock: timestamps in Gregorian seconds (seconds since 0000-01-01T00:00:00Z).

Kazoo stamps every document (``pvt_created``) and every crossbar range parameter
(``created_from``/``created_to``) in Gregorian seconds, so the debug API speaks the same unit.
"""

from __future__ import annotations

import datetime as _dt

UNIX_EPOCH_GREGORIAN_S = 62_167_219_200
"""Gregorian seconds at 1970-01-01T00:00:00Z."""


def unix_to_gregorian(unix_s: float) -> int:
    """Whole Gregorian seconds for a Unix timestamp (fractions are dropped, as Kazoo does)."""
    return int(unix_s) + UNIX_EPOCH_GREGORIAN_S


def gregorian_to_unix(gregorian_s: int) -> int:
    return gregorian_s - UNIX_EPOCH_GREGORIAN_S


def month_prefix(gregorian_s: int) -> str:
    """``YYYYMM`` (UTC) of a Gregorian timestamp: the prefix of Kazoo's ``debug_id``."""
    moment = _dt.datetime.fromtimestamp(gregorian_to_unix(gregorian_s), tz=_dt.UTC)
    return f"{moment.year:04d}{moment.month:02d}"


def month_bounds(year: int, month: int) -> tuple[int, int]:
    """Gregorian seconds of the first second of ``year``/``month`` and of the month after (UTC)."""
    start = _dt.datetime(year, month, 1, tzinfo=_dt.UTC)
    end = _dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=_dt.UTC)
    return unix_to_gregorian(start.timestamp()), unix_to_gregorian(end.timestamp())
