"""Process configuration, read once from ``PIVOT_*`` environment variables at start-up.

Each field of :class:`Settings` is read from the variable ``PIVOT_<FIELD NAME IN UPPER CASE>``;
the README's table lists them all and ``tests/unit/test_settings.py`` keeps the two in step.
A bad value fails fast with the variable's name and what was expected.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .twiml.after_dial import EXTENSION as AFTER_DIAL_EXTENSION

ENV_PREFIX = "PIVOT_"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """A ``PIVOT_*`` variable has a value that cannot be used."""


def _default_node() -> str:
    return f"pivot_worker@{socket.gethostname()}"


def parse_networks(text: str) -> tuple[Network, ...]:
    """Parse a comma-separated CIDR list (``127.0.0.0/8, ::1/128``); blank items are ignored."""
    out: list[Network] = []
    for item in text.split(","):
        item = item.strip()
        if item:
            out.append(ipaddress.ip_network(item, strict=False))
    return tuple(out)


def parse_name_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def redact_url(url: str) -> str:
    """Hide the password of a ``scheme://user:pass@host`` URL (or of each in a comma-separated list)."""
    if "," in url:
        return ",".join(redact_url(part.strip()) for part in url.split(","))
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a worker or collector process needs; see the README for each variable."""

    # Broker and queue.
    amqp_url: str = field(default="amqp://guest:guest@127.0.0.1:5672/", metadata={"secret": True})
    queue: str = "pivot_worker"
    prefetch: int = 1000
    node: str = field(default_factory=_default_node)
    shutdown_grace_s: float = 20.0
    queue_type: str = "classic"
    max_deliveries: int = 5
    reconnect_give_up_s: float = 60.0

    # Exactly one answer per request across crashes.
    ledger_url: str = field(default="sqlite:///pivot_ledger", metadata={"secret": True})
    ledger_lease_ms: int = 1000

    # Bounds of the queues nobody may be reading (0 = no bound).
    dead_letter_max_length: int = 100_000
    dead_letter_ttl_s: float = 14 * 86400
    debug_queue_max_length: int = 1_000_000
    debug_queue_ttl_s: float = 7 * 86400

    # The developer's server.
    request_timeout_ms: int = 5000
    max_request_timeout_ms: int = 8000
    stale_after_ms: int = 9000
    max_response_bytes: int = 64 * 1024
    max_redirects: int = 5
    fetch_attempts: int = 3
    http_max_connections: int = 1000
    host_concurrency: int = 200
    breaker_failures: int = 5
    breaker_open_s: float = 5.0
    allow_networks: tuple[Network, ...] = ()
    signing_keys_file: str = ""
    fallback_urls_file: str = ""

    # TwiML translation.
    max_iterations: int = 50
    continuation_key: str = field(default="", metadata={"secret": True})
    recording_url: str = ""
    translation_memo: int = 256
    after_dial_extension: str = ""

    # Call records (CDR-URI): post them from CHANNEL_DESTROY (README, "CDR callbacks").
    cdr: bool = True

    # Debug events, collector and API.
    debug_exchange: str = "pivot"
    debug_buffer: int = 10_000
    redact_params: tuple[str, ...] = ()
    database_url: str = field(default="sqlite:///pivot_debug.sqlite3", metadata={"secret": True})
    debug_retention_days: int = 31
    api_tokens_file: str = ""
    kazoo_auth_keys: str = ""
    api_listen: str = "127.0.0.1:8000"

    # Operations.
    metrics_listen: str = ""
    log_level: str = "INFO"
    log_format: str = "text"

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str, str]] = [
            (self.prefetch >= 1, "PREFETCH", "must be at least 1"),
            (self.request_timeout_ms >= 1, "REQUEST_TIMEOUT_MS", "must be at least 1"),
            (self.max_request_timeout_ms >= 1, "MAX_REQUEST_TIMEOUT_MS", "must be at least 1"),
            (self.stale_after_ms >= 1, "STALE_AFTER_MS", "must be at least 1"),
            (self.max_response_bytes >= 1, "MAX_RESPONSE_BYTES", "must be at least 1"),
            (self.max_redirects >= 0, "MAX_REDIRECTS", "must be 0 or more"),
            (self.fetch_attempts >= 1, "FETCH_ATTEMPTS", "must be at least 1"),
            (self.http_max_connections >= 1, "HTTP_MAX_CONNECTIONS", "must be at least 1"),
            (self.host_concurrency >= 1, "HOST_CONCURRENCY", "must be at least 1"),
            (self.breaker_failures >= 0, "BREAKER_FAILURES", "must be 0 (off) or more"),
            (self.breaker_open_s > 0, "BREAKER_OPEN_S", "must be more than 0"),
            (self.max_iterations >= 1, "MAX_ITERATIONS", "must be at least 1"),
            (self.translation_memo >= 0, "TRANSLATION_MEMO", "must be 0 or more"),
            (
                not self.after_dial_extension
                or AFTER_DIAL_EXTENSION.fullmatch(self.after_dial_extension) is not None,
                "AFTER_DIAL_EXTENSION",
                "must be a dialplan extension: 1 to 64 of A-Z a-z 0-9 * # + _ . -",
            ),
            (self.shutdown_grace_s >= 0, "SHUTDOWN_GRACE_S", "must be 0 or more"),
            (self.debug_buffer >= 1, "DEBUG_BUFFER", "must be at least 1"),
            (self.debug_retention_days >= 1, "DEBUG_RETENTION_DAYS", "must be at least 1"),
            (self.queue_type in ("classic", "quorum"), "QUEUE_TYPE", "must be classic or quorum"),
            (self.max_deliveries >= 1, "MAX_DELIVERIES", "must be at least 1"),
            (self.reconnect_give_up_s > 0, "RECONNECT_GIVE_UP_S", "must be more than 0"),
            (self.ledger_lease_ms >= 1, "LEDGER_LEASE_MS", "must be at least 1"),
            (self.dead_letter_max_length >= 0, "DEAD_LETTER_MAX_LENGTH", "must be 0 (no bound) or more"),
            (self.dead_letter_ttl_s >= 0, "DEAD_LETTER_TTL_S", "must be 0 (no bound) or more"),
            (self.debug_queue_max_length >= 0, "DEBUG_QUEUE_MAX_LENGTH", "must be 0 (no bound) or more"),
            (self.debug_queue_ttl_s >= 0, "DEBUG_QUEUE_TTL_S", "must be 0 (no bound) or more"),
            (bool(self.amqp_urls), "AMQP_URL", "must name at least one broker"),
            (self.log_format in ("text", "json"), "LOG_FORMAT", "must be text or json"),
        ]
        for ok, name, why in checks:
            if not ok:
                raise SettingsError(f"{ENV_PREFIX}{name} {why}")

    @property
    def amqp_urls(self) -> tuple[str, ...]:
        """``PIVOT_AMQP_URL`` may list several brokers, comma-separated; they are tried in turn."""
        return parse_name_list(self.amqp_url)

    @classmethod
    def env_names(cls) -> list[str]:
        return [ENV_PREFIX + f.name.upper() for f in fields(cls)]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``env`` (default ``os.environ``); ``overrides`` (e.g. CLI flags) win."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = ENV_PREFIX + f.name.upper()
            raw = source.get(name)
            if raw is None:
                continue
            values[f.name] = _convert(name, raw, f)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and isinstance(value, str):
                value = redact_url(value) if "://" in value else ("***" if value else "")
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"


def _convert(name: str, raw: str, f: dataclasses.Field[Any]) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    text = raw.strip()
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            lowered = text.lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError("expected true or false")
        if kind == "tuple[Network, ...]":
            return parse_networks(text)
        if kind == "tuple[str, ...]":
            return parse_name_list(text)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not valid: {exc}") from exc
    return raw
