"""``headrace server database upgrade|downgrade|reset`` against a temporary HEADRACE_HOME."""

from __future__ import annotations

import os
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from headrace.cli.main import build_app
from headrace.server.db.migrate import head_revision

runner = CliRunner()


def headrace(*args: str) -> tuple[int, str]:
    result = runner.invoke(build_app(), list(args))
    return result.exit_code, result.output


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("HEADRACE_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("HEADRACE_HOME", str(home))
    return home


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows} - {"alembic_version"}


def _flows(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [name for (name,) in connection.execute("SELECT name FROM flows")]


def _add_flow(db: Path, name: str) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute(
            "INSERT INTO flows (id, name, tags, created, updated) VALUES (?, ?, '[]', '2030-01-01', '2030-01-01')",
            (os.urandom(16).hex(), name),
        )


def test_upgrade_downgrade_and_reset_the_default_database(home: Path) -> None:
    db = home / "headrace.db"

    code, output = headrace("server", "database", "upgrade")
    assert code == 0, output
    assert f"is at revision {head_revision()} (head)" in output
    assert "flow_runs" in _tables(db)

    code, output = headrace("server", "database", "downgrade")  # one step: before the flow retry delays
    assert code == 0, output
    assert "is at revision 9662788764cf." in output
    assert "block_documents" in _tables(db)

    code, output = headrace("server", "database", "downgrade", "--revision", "1eabcfb03d67")  # before blocks
    assert code == 0, output
    assert "is at revision 1eabcfb03d67." in output
    assert "flow_runs" in _tables(db)
    assert "block_documents" not in _tables(db)

    code, output = headrace("server", "database", "downgrade")  # one more: nothing left
    assert code == 0, output
    assert "base (no headrace tables)" in output
    assert _tables(db) == set()

    code, output = headrace("server", "database", "upgrade", "--revision", "head")
    assert code == 0, output
    _add_flow(db, "doomed")

    code, output = headrace("server", "database", "reset", "--yes")
    assert code == 0, output
    assert "was reset" in output
    assert _flows(db) == []
    assert "flow_runs" in _tables(db)

    code, output = headrace("server", "database", "downgrade", "--revision", "base")
    assert code == 0, output
    assert _tables(db) == set()


def test_reset_refuses_without_yes_when_there_is_no_terminal(home: Path) -> None:
    db = home / "headrace.db"
    assert headrace("server", "database", "upgrade")[0] == 0
    _add_flow(db, "precious")

    code, output = headrace("server", "database", "reset")
    assert code == 1
    assert "refusing to reset" in output
    assert "--yes" in output
    assert _flows(db) == ["precious"]


def test_errors_are_one_line(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, output = headrace("server", "database", "downgrade")
    assert code == 1
    assert output.strip().splitlines() == [output.strip()]
    assert "nothing to downgrade" in output

    code, output = headrace("server", "database", "upgrade", "--revision", "nope")
    assert (code, output.count("\n")) == (1, 1)
    assert "Can't locate revision identified by 'nope'" in output

    monkeypatch.setenv("HEADRACE_SERVER_DATABASE_CONNECTION_URL", "postgresql://postgres:pw@127.0.0.1:1/none")
    code, output = headrace("server", "database", "upgrade")
    assert (code, output.count("\n")) == (1, 1)
    assert output.startswith("error: cannot reach the database postgresql+asyncpg://postgres:***@127.0.0.1:1/none")

    monkeypatch.setenv("HEADRACE_SERVER_DATABASE_CONNECTION_URL", "mysql://u@h/db")
    code, output = headrace("server", "database", "reset")
    assert (code, output.count("\n")) == (1, 1)
    assert "does not support" in output


def test_the_commands_work_on_postgresql(empty_postgres_url: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_SERVER_DATABASE_CONNECTION_URL", empty_postgres_url)
    for command, expected in (
        (["upgrade"], "(head)"),
        (["reset", "--yes"], "was reset"),
        (["downgrade", "-r", "base"], "base (no headrace tables)"),
    ):
        code, output = headrace("server", "database", *command)
        assert code == 0, output
        assert expected in output
    assert not (home / "headrace.db").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.parametrize(("answer", "kept"), [("n", ["precious"]), ("y", [])])
def test_reset_asks_at_a_terminal(home: Path, answer: str, kept: list[str]) -> None:
    import pty

    db = home / "headrace.db"
    assert headrace("server", "database", "upgrade")[0] == 0
    _add_flow(db, "precious")

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "headrace.cli.main", "server", "database", "reset"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=os.environ.copy(),
    )
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + 120  # a guard against hanging, not a timing assertion
        while b"[y/N]" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1)
            if ready:
                seen += os.read(controller, 1024)
        assert b"[y/N]" in seen, seen
        assert b"will be deleted" in seen
        os.write(controller, f"{answer}\n".encode())
        process.wait(timeout=120)
        while True:
            ready, _, _ = select.select([controller], [], [], 0.1)
            if not ready:
                break
            try:
                chunk = os.read(controller, 1024)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    assert process.returncode == (1 if answer == "n" else 0), seen
    assert _flows(db) == kept
