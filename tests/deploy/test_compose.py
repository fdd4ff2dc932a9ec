"""deploy/compose.yaml: YAML, the Compose Specification schema, and what the services must carry.

The Compose Specification JSON Schema (tests/data/schemas/README.md says where it comes from)
checks the structure here; test_compose_cli.py has the Compose implementation read the file too.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema
import pytest

from .conftest import DEPLOY, SCHEMAS, listen_port, load_json

WORKERS = ("worker-1", "worker-2", "worker-3")
EXACT_TAG = re.compile(r"^[a-z0-9./-]+:\d+\.\d+(\.\d+)?(-[a-z0-9.-]+)?$")  # PostgreSQL: major.minor


def validator() -> jsonschema.protocols.Validator:
    schema = load_json(SCHEMAS / "compose-spec.json")
    # its "$schema" (http://json-schema.org/draft/2019-09/schema#) is not the draft's canonical URI
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_compose_file_passes_the_compose_specification_schema(compose: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator().iter_errors(compose)]
    assert errors == []


def test_the_schema_does_reject_a_wrong_structure(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["healthcheck"]["retries"] = "many"
    broken["services"]["redis"]["no_such_key"] = 1
    assert len(list(validator().iter_errors(broken))) >= 2


def test_services_and_pinned_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"rabbitmq", "postgres", "redis", *WORKERS, "collector"}
    for name, service in services.items():
        assert EXACT_TAG.match(service["image"]), (name, service["image"])
        assert "healthcheck" in service, name


def test_infrastructure_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["rabbitmq"]["healthcheck"]["test"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_rabbitmq_loads_the_definitions(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["rabbitmq"]["volumes"]
    assert "./rabbitmq-definitions.json:/etc/rabbitmq/definitions.json:ro" in volumes
    conf = next(v for v in volumes if v.startswith("./rabbitmq.conf:"))
    target = conf.split(":")[1]
    assert target.startswith("/etc/rabbitmq/conf.d/")
    assert "load_definitions = /etc/rabbitmq/definitions.json" in (DEPLOY / "rabbitmq.conf").read_text()


@pytest.mark.parametrize("name", WORKERS)
def test_workers(compose: dict[str, Any], env_names: set[str], name: str) -> None:
    worker = compose["services"][name]
    env = worker["environment"]
    assert worker["command"] == ["run", "--no-collector"]
    assert set(env) <= env_names
    assert env["PIVOT_LEDGER_URL"] == "redis://redis:6379/0"
    assert env["PIVOT_QUEUE_TYPE"] == "quorum"  # the queue of rabbitmq-definitions.json
    probe = " ".join(worker["healthcheck"]["test"])
    assert f"http://127.0.0.1:{listen_port(env['PIVOT_METRICS_LISTEN'])}/readyz" in probe
    assert worker["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    nodes = {compose["services"][w]["environment"]["PIVOT_NODE"] for w in WORKERS}
    assert len(nodes) == len(WORKERS)


def test_collector(compose: dict[str, Any], env_names: set[str]) -> None:
    collector = compose["services"]["collector"]
    env = collector["environment"]
    assert [*collector["entrypoint"], *collector["command"]] == ["pivot-collector", "run"]
    assert set(env) <= env_names
    assert env["PIVOT_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in env["PIVOT_DATABASE_URL"]
    probe = " ".join(collector["healthcheck"]["test"])
    assert f"http://127.0.0.1:{listen_port(env['PIVOT_API_LISTEN'])}/healthz" in probe
    assert collector["depends_on"]["postgres"]["condition"] == "service_healthy"
