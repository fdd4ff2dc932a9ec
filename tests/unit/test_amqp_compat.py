from __future__ import annotations

import datetime
import struct

import pamqp.decode
import pytest

from pivot_worker import amqp_compat

NOW = 1_795_000_000  # Unix seconds, 2026-11
# Gregorian seconds at the Unix epoch, written out here rather than taken from the module under test
# (kz_time.erl: ?UNIX_EPOCH_IN_GREGORIAN).
GREGORIAN = 62_167_219_200
KAZOO_NOW_US = (NOW + GREGORIAN) * 1_000_000  # what kz_time:now_us() gives at NOW: ~6.4e16


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        pytest.param(NOW, NOW, id="unix-s"),
        pytest.param(NOW * 1000 + 250, NOW + 0.25, id="unix-ms"),
        pytest.param(NOW * 1_000_000 + 500_000, NOW + 0.5, id="unix-us"),
        pytest.param(NOW + GREGORIAN, NOW, id="gregorian-s"),
        pytest.param((NOW + GREGORIAN) * 1000 + 250, NOW + 0.25, id="gregorian-ms"),
        pytest.param(KAZOO_NOW_US + 123_456, NOW + 0.123456, id="gregorian-us"),
    ],
)
def test_unit_and_epoch_are_read_from_the_value(raw: int, seconds: float) -> None:
    assert amqp_compat.seconds_from_amqp(raw) == pytest.approx(seconds, abs=1e-6)


def test_kazoo_stamp_keeps_microsecond_precision() -> None:
    assert amqp_compat.seconds_from_amqp(KAZOO_NOW_US + 1) == NOW + 0.000001


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(0, id="zero"),
        pytest.param(2**64 - 1, id="max-u64"),
        pytest.param(GREGORIAN - 1, id="just-before-gregorian-zero"),  # Gregorian, before 1970
        pytest.param((GREGORIAN - 5) * 1_000_000, id="gregorian-us-before-1970"),
        pytest.param(300_000_000_000 * 1_000_000 + GREGORIAN * 1_000_000, id="beyond-year-9999"),
    ],
)
def test_absurd_values_are_none(raw: int) -> None:
    assert amqp_compat.seconds_from_amqp(raw) is None


def test_installed_decoder_reads_kazoo_gregorian_microseconds_instead_of_raising() -> None:
    amqp_compat.install()
    consumed, value = pamqp.decode.by_type(struct.pack(">Q", KAZOO_NOW_US), "timestamp")
    assert consumed == 8
    assert value == datetime.datetime.fromtimestamp(NOW, tz=datetime.UTC)
    _, unix_us = pamqp.decode.by_type(struct.pack(">Q", NOW * 1_000_000), "timestamp")
    assert unix_us == datetime.datetime.fromtimestamp(NOW, tz=datetime.UTC)
    _, absurd = pamqp.decode.by_type(struct.pack(">Q", 2**64 - 1), "timestamp")
    assert absurd is None
