"""``pivot-collector`` as an operator meets it: clear refusals, a schema on demand, the document."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from pivot_worker.collector.cli import main


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """The command configures the root logger; put pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_openapi_command_prints_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["openapi"]) == 0
    assert orjson.loads(capsys.readouterr().out)["openapi"] == "3.1.0"


def test_migrate_creates_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["migrate", "--database-url", "sqlite:///fresh.sqlite3", "--log-level", "WARNING"]) == 0
    assert (tmp_path / "fresh.sqlite3").stat().st_size > 0


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["migrate", "--database-url", "mysql://u:pw@h/db"], "PIVOT_DATABASE_URL uses 'mysql'"),
        (
            ["run", "--listen", "nowhere", "--database-url", "sqlite:///x.sqlite3"],
            "PIVOT_API_LISTEN='nowhere'",
        ),
    ],
)
def test_bad_settings_exit_2_naming_the_variable(
    argv: list[str],
    words: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err
    assert "pw" not in err


def test_unreadable_tokens_file_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIVOT_API_TOKENS_FILE", str(tmp_path / "absent.json"))
    assert main(["run", "--database-url", "sqlite:///x.sqlite3"]) == 2
    assert "PIVOT_API_TOKENS_FILE" in capsys.readouterr().err
