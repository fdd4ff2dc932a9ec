"""``docker compose config`` on deploy/compose.yaml: the Compose implementation's own reading.

``config`` needs no Docker engine: it parses, validates, interpolates and prints the resolved
model. The test uses the ``docker compose`` plugin where it is installed, else the standalone
``docker-compose`` (CI installs Debian's package). Missing both skips locally and fails in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import IN_CI

from .conftest import DEPLOY

COMPOSE_FILE = str(DEPLOY / "compose.yaml")


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone:
        return [standalone]
    message = "neither `docker compose` nor `docker-compose` is installed"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def run_config(env: dict[str, str], compose_file: str = COMPOSE_FILE) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PIVOT_")}
    return subprocess.run(
        [*compose_command(), "-f", compose_file, "config"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_config_accepts_the_file() -> None:
    result = run_config({"PIVOT_CONTINUATION_KEY": "a-long-random-test-secret"})
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    services = resolved["services"]
    workers = sorted(name for name in services if name.startswith("worker-"))
    assert workers == ["worker-1", "worker-2", "worker-3"]
    for name in workers:
        environment = services[name]["environment"]
        assert environment["PIVOT_CONTINUATION_KEY"] == "a-long-random-test-secret"
        assert services[name]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert {"rabbitmq", "postgres", "redis", "collector"} <= set(services)


def test_compose_config_refuses_to_start_without_the_continuation_key() -> None:
    result = run_config({})
    assert result.returncode != 0
    assert "PIVOT_CONTINUATION_KEY" in result.stderr


def test_compose_config_does_refuse_a_wrong_file(tmp_path: Path) -> None:
    broken = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    broken["services"]["redis"]["healthcheck"]["retries"] = "many"
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = run_config({"PIVOT_CONTINUATION_KEY": "x"}, str(path))
    assert result.returncode != 0
    assert "retries" in result.stderr
