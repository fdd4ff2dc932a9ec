"""Make the AMQP client read Kazoo's message timestamps instead of failing on them.

Kazoo stamps ``pivot_req`` with the AMQP ``timestamp`` property in microseconds (kazoo-wire.md
1.3), where AMQP means seconds. pamqp turns the value into a ``datetime`` while decoding the frame
and, for a microsecond value, raises ``ValueError: year ... is out of range``: the client then drops
the whole connection, the unacked request is redelivered and breaks it again. This module replaces
pamqp's timestamp decoder with one that reads seconds, milliseconds and microseconds by magnitude
and never raises for an out-of-range value (it yields ``None``: the request then ages from receipt).
"""

from __future__ import annotations

import datetime
import struct

import pamqp.decode

_U64 = struct.Struct(">Q")
_MS_FROM = 10**11  # ~ year 5138 in seconds; any larger value is taken as milliseconds
_US_FROM = 10**14  # ... and any value larger than this as microseconds


def seconds_from_amqp(raw: int) -> float | None:
    """Seconds since the epoch for a raw AMQP timestamp of unknown unit, or ``None`` if absurd."""
    if raw >= _US_FROM:
        value = raw / 1_000_000
    elif raw >= _MS_FROM:
        value = raw / 1_000
    else:
        value = float(raw)
    return value if 0 < value < 253_402_300_799 else None  # before 10000-01-01


def _decode_timestamp(value: bytes) -> tuple[int, datetime.datetime | None]:
    try:
        (raw,) = _U64.unpack(value[0:8])
    except struct.error as err:
        raise ValueError("Could not unpack timestamp value") from err
    seconds = seconds_from_amqp(raw)
    if seconds is None:
        return 8, None
    return 8, datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


def install() -> None:
    """Idempotently route pamqp's property and header-table timestamp decoding through ours."""
    pamqp.decode.METHODS["timestamp"] = _decode_timestamp
    pamqp.decode.TABLE_MAPPING[b"T"] = _decode_timestamp
