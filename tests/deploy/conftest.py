from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pivot_worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = ROOT / "tests" / "data" / "schemas"


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def listen_port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def env_names() -> set[str]:
    return set(Settings.env_names())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(doc, dict)
    return doc
