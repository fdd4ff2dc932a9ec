"""Query parameters of the debug API, checked one by one so a bad one gets a 400 that names it.

Accepted, as crossbar accepts them: ``created_from``/``created_to`` (Gregorian seconds; default
the 31 days up to now, at most 31 days apart), ``page_size`` (1..1000, default 50),
``start_key`` (the opaque ``next_start_key`` of a previous page), ``paginate=false`` (one
unpaginated answer), ``ascending``/``descending`` (newest first by default). Ours:
``failed=true`` (only calls with a failed result). Unknown parameters are ignored, as crossbar does.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from multidict import MultiMapping

from ..debug.gregorian import unix_to_gregorian

MAX_RANGE_S = 31 * 24 * 3600  # crossbar.maximum_range
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
UNPAGINATED_LIMIT = 10_000
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class BadParameter(ValueError):
    """One query parameter is unusable; ``code`` is crossbar's validation code for it."""

    def __init__(self, parameter: str, code: str, message: str, cause: object) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.code = code
        self.message = message
        self.cause = cause


@dataclass(frozen=True, slots=True)
class TimeRange:
    created_from: int
    created_to: int


@dataclass(frozen=True, slots=True)
class ListQuery:
    range: TimeRange
    page_size: int | None  # None: paginate=false
    start: tuple[int, str] | None
    start_key: str | None
    descending: bool
    failed_only: bool


def encode_start_key(first_key: int, call_id: str) -> str:
    raw = orjson.dumps([first_key, call_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_start_key(text: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        doc = orjson.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadParameter(
            "start_key", "type", "must be a next_start_key returned by this API", text
        ) from exc
    if (
        not isinstance(doc, list)
        or len(doc) != 2
        or not isinstance(doc[0], int)
        or isinstance(doc[0], bool)
        or not isinstance(doc[1], str)
    ):
        raise BadParameter("start_key", "type", "must be a next_start_key returned by this API", text)
    return doc[0], doc[1]


def _boolean(params: Mapping[str, str], name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise BadParameter(name, "type", "must be true or false", raw)


def _seconds(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadParameter(name, "type", "must be an integer number of Gregorian seconds", raw) from None
    if value <= 0 or value > 10**12:
        raise BadParameter(name, "minimum", "must be a positive number of Gregorian seconds", raw)
    return value


def time_range(params: Mapping[str, str], *, now: float | None = None, limited: bool = True) -> TimeRange:
    """Crossbar's ``created_from``/``created_to`` rules (defaults: the 31 days up to now)."""
    created_to = _seconds(params, "created_to")
    if created_to is None:
        created_to = unix_to_gregorian(time.time() if now is None else now)
    created_from = _seconds(params, "created_from")
    if created_from is None:
        created_from = created_to - MAX_RANGE_S
    span = created_to - created_from
    if span < 0:
        raise BadParameter(
            "created_from",
            "date_range",
            f"created_to {created_to} is prior to created_from {created_from}",
            created_from,
        )
    if limited and span > MAX_RANGE_S:
        raise BadParameter(
            "created_from",
            "date_range",
            f"created_to {created_to} is more than {MAX_RANGE_S} seconds from created_from {created_from}",
            created_to,
        )
    return TimeRange(created_from, created_to)


LIST_PARAMETERS = (
    "created_from", "created_to", "page_size", "start_key", "paginate", "ascending", "descending", "failed",
)  # fmt: skip
READ_PARAMETERS = ("created_from", "created_to")


def reject_repeats(params: MultiMapping[str], names: tuple[str, ...]) -> None:
    """A parameter we read must appear once: which of two values was meant is anyone's guess."""
    for name in names:
        values = params.getall(name, [])
        if len(values) > 1:
            raise BadParameter(name, "repeated", "must be given at most once", values)


def _page_size(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE_SIZE
    try:
        page_size = int(raw.strip())
    except ValueError:
        raise BadParameter("page_size", "type", "invalid page size", raw) from None
    if page_size < 1:
        raise BadParameter("page_size", "minimum", "page size must be at least 1", raw)
    if page_size > MAX_PAGE_SIZE:
        raise BadParameter("page_size", "maximum", f"page size must be at most {MAX_PAGE_SIZE}", raw)
    return page_size


def list_query(params: MultiMapping[str], *, now: float | None = None) -> ListQuery:
    reject_repeats(params, LIST_PARAMETERS)
    rng = time_range(params, now=now)
    paginate = _boolean(params, "paginate", True)
    page_size: int | None = _page_size(params.get("page_size"))  # checked even when unused
    if not paginate:
        page_size = None
    start_key = params.get("start_key")
    start = decode_start_key(start_key) if start_key is not None else None
    ascending = _boolean(params, "ascending", False)
    if _boolean(params, "descending", False) and ascending:
        raise BadParameter("ascending", "conflict", "ascending and descending cannot both be true", "true")
    descending = not ascending
    return ListQuery(
        range=rng,
        page_size=page_size,
        start=start,
        start_key=start_key,
        descending=descending,
        failed_only=_boolean(params, "failed", False),
    )


def read_range(params: MultiMapping[str]) -> TimeRange | None:
    """Optional bounds for the per-call endpoint; None when neither bound is given."""
    reject_repeats(params, READ_PARAMETERS)
    if "created_from" not in params and "created_to" not in params:
        return None
    return time_range(params, limited=False)
