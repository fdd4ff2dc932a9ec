from __future__ import annotations

import datetime
import struct

import pamqp.decode
import pytest

from pivot_worker import amqp_compat

NOW = 1_795_000_000


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [(NOW, NOW), (NOW * 1000, NOW), (NOW * 1_000_000, NOW), (0, None), (2**64 - 1, None)],
)
def test_units_are_read_by_magnitude(raw: int, seconds: float | None) -> None:
    assert amqp_compat.seconds_from_amqp(raw) == seconds


def test_installed_decoder_reads_kazoo_microseconds_instead_of_raising() -> None:
    amqp_compat.install()
    consumed, value = pamqp.decode.by_type(struct.pack(">Q", NOW * 1_000_000), "timestamp")
    assert consumed == 8
    assert value == datetime.datetime.fromtimestamp(NOW, tz=datetime.UTC)
    _, absurd = pamqp.decode.by_type(struct.pack(">Q", 2**64 - 1), "timestamp")
    assert absurd is None
