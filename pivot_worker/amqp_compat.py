"""Make the AMQP client read Kazoo's message timestamps instead of failing on them.

Kazoo stamps ``pivot_req`` with the AMQP ``timestamp`` property set to ``kz_time:now_us()``
(``kz_amqp_util.erl`` puts it in the basic properties): *Gregorian* microseconds, counted from
0000-01-01 rather than 1970-01-01, i.e. Unix microseconds plus 62,167,219,200 s x 10^6
(``kz_time.erl``, ``now_us/0`` adds ``?UNIX_EPOCH_IN_GREGORIAN``). That is about 6.4e16 today,
where AMQP means Unix seconds (~1.8e9).

pamqp turns the value into a ``datetime`` while decoding the frame and, for such a value, raises
``ValueError: year ... is out of range``: the client then drops the whole connection, the unacked
request is redelivered and breaks it again. This module replaces pamqp's timestamp decoder with one
that reads the unit by magnitude (seconds, milliseconds, microseconds) and the epoch by value (a
value whose seconds are at or beyond the Gregorian offset, less a margin, counts from year 0), so
Kazoo's stamp, a standard Unix-seconds stamp and the other combinations all give the right instant.
It never raises for an out-of-range value: it yields ``None`` and the request then ages from receipt.
"""

from __future__ import annotations

import datetime
import struct

import pamqp.decode

_U64 = struct.Struct(">Q")
_MS_FROM = 10**11  # ~ year 5138 in Unix seconds; any larger value is taken as milliseconds
_US_FROM = 10**14  # ... and any value larger than this as microseconds
# Gregorian seconds at 1970-01-01T00:00:00Z (kz_time.erl's ?UNIX_EPOCH_IN_GREGORIAN).
GREGORIAN_UNIX_EPOCH_S = 62_167_219_200
# Seconds at or beyond this count from year 0: Gregorian stamps back to ~1938 qualify, while a Unix
# reading of them would be beyond year 3900. Kazoo never sends a Unix stamp; others send Unix seconds.
_GREGORIAN_FROM_S = GREGORIAN_UNIX_EPOCH_S - 1_000_000_000
_LATEST_S = 253_402_300_799  # 9999-12-31T23:59:59Z, the last instant a datetime can hold


def seconds_from_amqp(raw: int) -> float | None:
    """Unix seconds for a raw AMQP timestamp of unknown unit and epoch, or ``None`` if absurd.

    Unit by magnitude: below 1e11 seconds, below 1e14 milliseconds, else microseconds (for any
    date between 1973 and 3000, Unix and Gregorian values of one unit fall in the same band).
    Epoch by value: seconds at or beyond the Gregorian offset less ~31 years are Gregorian.
    """
    per_second = 1_000_000 if raw >= _US_FROM else 1_000 if raw >= _MS_FROM else 1
    if raw // per_second >= _GREGORIAN_FROM_S:
        raw -= GREGORIAN_UNIX_EPOCH_S * per_second  # in integers: no precision lost on 6.4e16
    value = raw / per_second
    return value if 0 < value <= _LATEST_S else None


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
