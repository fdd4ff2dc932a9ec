from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from pivot_worker.settings import Settings, SettingsError

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults() -> None:
    s = Settings()
    assert s.amqp_url == "amqp://guest:guest@127.0.0.1:5672/"
    assert (s.queue, s.prefetch, s.request_timeout_ms, s.stale_after_ms) == ("pivot_worker", 1000, 5000, 9000)
    assert (s.http_max_connections, s.host_concurrency) == (1000, 200)
    assert (s.breaker_failures, s.breaker_open_s) == (5, 5.0)
    assert s.max_response_bytes == 64 * 1024
    assert s.allow_networks == ()


def test_from_env_converts_types_and_overrides_win() -> None:
    env = {
        "PIVOT_PREFETCH": "7",
        "PIVOT_SHUTDOWN_GRACE_S": "1.5",
        "PIVOT_ALLOW_NETWORKS": "127.0.0.0/8, ::1/128",
        "PIVOT_REDACT_PARAMS": "token, pin",
        "PIVOT_QUEUE": "from_env",
    }
    s = Settings.from_env(env, queue="from_flag", prefetch=None)
    assert s.prefetch == 7 and s.shutdown_grace_s == 1.5 and s.queue == "from_flag"
    assert s.allow_networks == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert s.redact_params == ("token", "pin")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PIVOT_PREFETCH": "many"}, "PIVOT_PREFETCH='many' is not valid"),
        ({"PIVOT_PREFETCH": "0"}, "PIVOT_PREFETCH must be at least 1"),
        ({"PIVOT_ALLOW_NETWORKS": "10.0.0.0/33"}, "PIVOT_ALLOW_NETWORKS"),
        ({"PIVOT_HOST_CONCURRENCY": "0"}, "PIVOT_HOST_CONCURRENCY must be at least 1"),
        ({"PIVOT_BREAKER_FAILURES": "-1"}, "PIVOT_BREAKER_FAILURES must be 0 (off) or more"),
        ({"PIVOT_BREAKER_OPEN_S": "0"}, "PIVOT_BREAKER_OPEN_S must be more than 0"),
        (
            {"PIVOT_AFTER_DIAL_EXTENSION": "77:XML:context_2"},
            "PIVOT_AFTER_DIAL_EXTENSION must be a dialplan extension",
        ),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env(env)


def test_repr_hides_secrets() -> None:
    text = repr(Settings(amqp_url="amqp://u:hunter2@h/", continuation_key="k3y"))
    assert "hunter2" not in text and "k3y" not in text


def test_readme_documents_every_variable() -> None:
    text = README.read_text()
    missing = [name for name in Settings.env_names() if f"`{name}`" not in text]
    assert not missing, f"README.md lacks {missing}"
