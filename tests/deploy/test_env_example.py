"""deploy/pivot-worker.env.example names every setting, and only settings that exist."""

from __future__ import annotations

import re

from .conftest import DEPLOY

ASSIGNMENT = re.compile(r"^#?\s*(PIVOT_[A-Z0-9_]+)=", re.MULTILINE)


def test_every_setting_is_in_the_example(env_names: set[str]) -> None:
    named = set(ASSIGNMENT.findall((DEPLOY / "pivot-worker.env.example").read_text()))
    assert env_names - named == set(), "add the new setting to deploy/pivot-worker.env.example"


def test_the_example_names_no_unknown_setting(env_names: set[str]) -> None:
    named = set(ASSIGNMENT.findall((DEPLOY / "pivot-worker.env.example").read_text()))
    assert named - env_names == set()
