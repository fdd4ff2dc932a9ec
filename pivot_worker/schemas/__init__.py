"""Bundled JSON Schemas: found through the package, so a source checkout and an installed wheel agree.

``amqp/`` is the repository's ``amqp_schemas/`` directory (a link in the source tree, copied into
the wheel by setuptools); ``callflows/`` holds one schema per callflow module we accept from a
developer. Files are read on first use and never at import time.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import orjson


def load_schema(relative_path: str) -> dict[str, Any]:
    """Return the parsed schema at ``relative_path`` (e.g. ``"amqp/pivot_req.json"``).

    Raises:
        FileNotFoundError: no such bundled file (the message names the path looked for).
        ValueError: the file is not a JSON object (a packaging or editing mistake).
    """
    target = resources.files(__name__).joinpath(relative_path)
    if not target.is_file():
        raise FileNotFoundError(f"bundled schema {relative_path!r} not found in {__name__}")
    doc = orjson.loads(target.read_bytes())
    if not isinstance(doc, dict):
        raise ValueError(f"bundled schema {relative_path!r} is not a JSON object")
    return doc


def schema_names(directory: str) -> list[str]:
    """Names (file stems) of the ``*.json`` schemas directly inside a bundled ``directory``."""
    folder = resources.files(__name__).joinpath(directory)
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".json"))
