"""deploy/Containerfile and deploy/requirements.lock: pinned base, non-root, health check, hashes."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from .conftest import DEPLOY, ROOT

PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)(\s*;[^\\]*)?\s*\\$", re.MULTILINE)


def locked() -> dict[str, Version]:
    return {
        canonicalize_name(m[1]): Version(m[2])
        for m in PIN.finditer((DEPLOY / "requirements.lock").read_text())
    }


def test_lock_covers_every_runtime_dependency() -> None:
    pins = locked()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for line in [*project["dependencies"], *build]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, (
            f"{name} is not in deploy/requirements.lock: run pip-compile (README 'Deploying')"
        )
        assert requirement.specifier.contains(pins[name], prereleases=True), (line, pins[name])
    for extra in ("greenlet",):  # sqlalchemy[asyncio]
        assert extra in pins


def test_every_pin_carries_hashes() -> None:
    text = (DEPLOY / "requirements.lock").read_text()
    entries = [b for b in re.split(r"\n(?=[A-Za-z0-9])", text) if "==" in b.split("\n", 1)[0]]
    assert len(entries) == len(locked())
    assert all("--hash=sha256:" in b for b in entries)


def test_containerfile() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-[a-z-]+|python@sha256:[0-9a-f]{64}", base), base
    assert "pip install --no-cache-dir --require-hashes -r requirements.lock" in text
    assert "--no-deps --no-build-isolation ." in text
    (user,) = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), user
    healthcheck = re.search(r"^HEALTHCHECK .*?\n(?=[A-Z])", text, re.MULTILINE | re.DOTALL)
    assert healthcheck is not None
    assert "/readyz" in healthcheck.group(0)
    assert "ENV " in text and "PIVOT_METRICS_LISTEN=0.0.0.0:9100" in text


def test_systemd_worker_unit_is_type_notify() -> None:
    unit = (DEPLOY / "pivot-worker.service").read_text()
    assert re.search(r"^Type=notify$", unit, re.MULTILINE)
