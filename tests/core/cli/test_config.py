"""``headrace config view/set/unset``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headrace.cli.config import mask_secret
from headrace.settings import ProfilesFile, Settings

WriteFile = Callable[[str], Path]
DB_URL = "postgresql+asyncpg://headrace:hunter2@db.internal:5432/headrace"


def _profile(home: Path, name: str = "default") -> dict[str, str]:
    return ProfilesFile.load(home).profiles[name]


# -- view -------------------------------------------------------------------------------------------


def test_view_shows_only_values_that_are_set(invoke: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_DEBUG", "1")
    ran = invoke("config", "view")
    assert ran.code == 0
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("profile: default")
    assert "HEADRACE_DEBUG=true" in lines
    assert not [line for line in lines if line.startswith("HEADRACE_CLIENT_MAX_RETRIES")]


def test_view_with_defaults_lists_every_setting(invoke: Callable[..., Any]) -> None:
    ran = invoke("config", "view", "--show-defaults")
    settings_lines = [line for line in ran.stdout.splitlines() if line.startswith("HEADRACE_")]
    assert len(settings_lines) == len(Settings.model_fields)
    assert "HEADRACE_CLIENT_MAX_RETRIES=5" in settings_lines
    assert "HEADRACE_CLIENT_RETRY_JITTER_FACTOR=0.2" in settings_lines
    assert "HEADRACE_LOGGING_TO_API_ENABLED=true" in settings_lines
    assert "HEADRACE_API_URL=" in settings_lines


def test_view_with_sources_says_where_each_value_comes_from(
    invoke: Callable[..., Any],
    write_profiles: WriteFile,
    write_dotenv: WriteFile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_profiles('[profiles.default]\nHEADRACE_CLIENT_MAX_RETRIES = "1"\n')
    write_dotenv("HEADRACE_CLIENT_METRICS_PORT=9002\n")
    monkeypatch.setenv("HEADRACE_DEBUG", "true")
    lines = invoke("config", "view", "--show-sources").stdout.splitlines()
    assert "HEADRACE_CLIENT_MAX_RETRIES=1  (from profile 'default')" in lines
    assert "HEADRACE_CLIENT_METRICS_PORT=9002  (from .env)" in lines
    assert "HEADRACE_DEBUG=true  (from environment)" in lines


def test_view_with_sources_and_defaults(invoke: Callable[..., Any]) -> None:
    lines = invoke("config", "view", "--show-sources", "--show-defaults").stdout.splitlines()
    assert "HEADRACE_CLIENT_MAX_RETRIES=5  (default)" in lines


def test_view_json(invoke: Callable[..., Any], home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_CLIENT_RETRY_EXTRA_CODES", "504,500")
    monkeypatch.setenv("HEADRACE_CLIENT_CUSTOM_HEADERS", '{"X-Team": "data"}')
    data = json.loads(invoke("config", "view", "--json").stdout)
    assert data["profile"] == "default"
    assert data["home"] == str(home)
    by_name = {row["name"]: row for row in data["settings"]}
    assert by_name["HEADRACE_CLIENT_RETRY_EXTRA_CODES"] == {
        "name": "HEADRACE_CLIENT_RETRY_EXTRA_CODES",
        "value": [500, 504],
        "source": "environment",
    }
    assert by_name["HEADRACE_CLIENT_CUSTOM_HEADERS"]["value"] == {"X-Team": "data"}
    data = json.loads(invoke("config", "view", "--json", "--show-defaults").stdout)
    by_name = {row["name"]: row for row in data["settings"]}
    assert by_name["HEADRACE_API_URL"] == {"name": "HEADRACE_API_URL", "value": None, "source": "default"}
    assert by_name["HEADRACE_LOGGING_TO_API_BATCH_SIZE"]["value"] == 4_000_000


def test_view_masks_secrets(
    headrace: Callable[..., Any], write_profiles: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_profiles(f'[profiles.default]\nHEADRACE_SERVER_DATABASE_CONNECTION_URL = "{DB_URL}"\n')
    monkeypatch.setenv("HEADRACE_API_KEY", "hr_very_secret_key")
    for args in (("config", "view"), ("config", "view", "--show-sources"), ("config", "view", "--json")):
        ran = headrace(*args)
        assert ran.code == 0, ran.stderr
        assert "hr_very_secret_key" not in ran.stdout + ran.stderr
        assert "hunter2" not in ran.stdout + ran.stderr
        assert "postgresql+asyncpg://headrace:********@db.internal:5432/headrace" in ran.stdout
    lines = headrace("config", "view").stdout.splitlines()
    assert "HEADRACE_API_KEY=********" in lines


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        ("hr_key", "********"),
        ("postgresql://user:pw@host/db", "postgresql://user:********@host/db"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("postgresql://u:p%40ss@[::1]:5432/db", "postgresql://u:********@[::1]:5432/db"),
        ("postgresql://u:a@b@host/db", "postgresql://u:********@host/db"),
        ("postgresql://host/db?user=u&password=pw", "postgresql://host/db?user=u&password=********"),
        ("sqlite+aiosqlite:////tmp/headrace.db", "sqlite+aiosqlite:////tmp/headrace.db"),
    ],
)
def test_mask_secret(secret: str, shown: str) -> None:
    assert mask_secret(secret) == shown


def test_view_notes_unknown_headrace_variables(invoke: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_API_ULR", "http://x")
    monkeypatch.setenv("HEADRACE_PROFILE", "default")  # read before the settings: not a typo
    ran = invoke("config", "view")
    assert ran.code == 0
    assert "note: ignoring unknown setting 'HEADRACE_API_ULR'; did you mean HEADRACE_API_URL" in ran.stderr
    assert "in the environment" in ran.stderr
    assert "HEADRACE_PROFILE" not in ran.stderr


def test_view_fails_on_an_invalid_value(headrace: Callable[..., Any], write_profiles: WriteFile) -> None:
    write_profiles('[profiles.default]\nHEADRACE_CLIENT_METRICS_PORT = "http"\n')
    ran = headrace("config", "view")
    assert ran.code == 1
    assert ran.stderr == (
        "error: invalid setting HEADRACE_CLIENT_METRICS_PORT='http' (from profile 'default'): "
        "Input should be a valid integer, unable to parse string as an integer\n"
    )


# -- set --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["HEADRACE_API_URL", "api_url", "API_URL", "headrace_api_url"])
def test_set_accepts_every_form_of_the_name(invoke: Callable[..., Any], home: Path, name: str) -> None:
    ran = invoke("config", "set", f"{name}=http://127.0.0.1:4200/api")
    assert ran.code == 0, ran.stderr
    assert ran.stdout == "set HEADRACE_API_URL in profile default\n"
    assert _profile(home) == {"HEADRACE_API_URL": "http://127.0.0.1:4200/api"}


def test_set_several_values_at_once(invoke: Callable[..., Any], home: Path) -> None:
    ran = invoke("config", "set", "debug=true", "HEADRACE_CLIENT_RETRY_EXTRA_CODES=500, 504")
    assert ran.code == 0, ran.stderr
    assert _profile(home) == {"HEADRACE_DEBUG": "true", "HEADRACE_CLIENT_RETRY_EXTRA_CODES": "500, 504"}
    assert "HEADRACE_CLIENT_RETRY_EXTRA_CODES=500,504" in invoke("config", "view").stdout.splitlines()


def test_set_writes_to_the_selected_profile(
    invoke: Callable[..., Any], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke("profile", "create", "prod").code == 0
    monkeypatch.setenv("HEADRACE_PROFILE", "prod")
    ran = invoke("config", "set", "HEADRACE_LOGGING_LEVEL=ERROR")
    assert ran.stdout == "set HEADRACE_LOGGING_LEVEL in profile prod\n"
    assert _profile(home, "prod") == {"HEADRACE_LOGGING_LEVEL": "ERROR"}
    assert _profile(home, "default") == {}


def test_set_validates_before_writing(headrace: Callable[..., Any], home: Path) -> None:
    assert headrace("config", "set", "HEADRACE_DEBUG=true").code == 0
    before = (home / "profiles.toml").read_bytes()
    ran = headrace("config", "set", "HEADRACE_API_URL=http://ok:4200/api", "HEADRACE_CLIENT_MAX_RETRIES=lots")
    assert ran.code == 1
    assert ran.stdout == ""
    assert ran.stderr == (
        "error: invalid setting HEADRACE_CLIENT_MAX_RETRIES='lots' (from 'config set' for profile 'default'): "
        "Input should be a valid integer, unable to parse string as an integer\n"
    )
    assert (home / "profiles.toml").read_bytes() == before


def test_set_invalid_json_changes_nothing(headrace: Callable[..., Any], home: Path) -> None:
    ran = headrace("config", "set", "HEADRACE_CLIENT_CUSTOM_HEADERS={nope")
    assert ran.code == 1
    assert len(ran.stderr.splitlines()) == 1
    assert "HEADRACE_CLIENT_CUSTOM_HEADERS='{nope'" in ran.stderr
    assert "expected a JSON object" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not (home / "profiles.toml").exists()


def test_set_suggests_close_names_for_typos(invoke: Callable[..., Any], home: Path) -> None:
    ran = invoke("config", "set", "HEADRACE_API_ULR=http://x")
    assert ran.code == 1
    assert ran.stderr == "error: unknown setting 'HEADRACE_API_ULR'; did you mean HEADRACE_API_URL?\n"
    assert not (home / "profiles.toml").exists()


def test_set_suggests_a_setting_by_its_words(invoke: Callable[..., Any]) -> None:
    ran = invoke("config", "set", "database_url=sqlite:///x.db")
    assert "did you mean HEADRACE_SERVER_DATABASE_CONNECTION_URL?" in ran.stderr


def test_set_needs_name_equals_value(invoke: Callable[..., Any]) -> None:
    ran = invoke("config", "set", "HEADRACE_DEBUG")
    assert ran.code == 1
    assert ran.stderr.startswith("error: expected NAME=VALUE, got 'HEADRACE_DEBUG'")


def test_set_refuses_home(invoke: Callable[..., Any], home: Path) -> None:
    ran = invoke("config", "set", "HEADRACE_HOME=/elsewhere")
    assert ran.code == 1
    assert "HEADRACE_HOME cannot be set in a profile" in ran.stderr
    assert not (home / "profiles.toml").exists()


def test_set_a_secret_never_echoes_it(headrace: Callable[..., Any], home: Path) -> None:
    ran = headrace("config", "set", "HEADRACE_API_KEY=hr_very_secret_key")
    assert ran.code == 0
    assert "hr_very_secret_key" not in ran.stdout + ran.stderr
    assert _profile(home) == {"HEADRACE_API_KEY": "hr_very_secret_key"}


def test_set_notes_when_the_environment_overrides(invoke: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_DEBUG", "false")
    ran = invoke("config", "set", "HEADRACE_DEBUG=true")
    assert ran.code == 0
    assert ran.stderr == (
        "note: HEADRACE_DEBUG is also set in the environment, which takes precedence over the profile\n"
    )


def test_set_works_despite_an_invalid_value_elsewhere(
    invoke: Callable[..., Any], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An invalid environment variable must not stop one from fixing the profile."""
    monkeypatch.setenv("HEADRACE_LOGGING_LEVEL", "LOUD")
    ran = invoke("config", "set", "HEADRACE_DEBUG=true")
    assert ran.code == 0, ran.stderr
    assert _profile(home) == {"HEADRACE_DEBUG": "true"}


def test_set_can_repair_an_invalid_profile_value(
    invoke: Callable[..., Any], home: Path, write_profiles: WriteFile
) -> None:
    write_profiles('[profiles.default]\nHEADRACE_CLIENT_MAX_RETRIES = "lots"\n')
    assert invoke("config", "view").code == 1
    assert invoke("config", "set", "client_max_retries=3").code == 0
    assert "HEADRACE_CLIENT_MAX_RETRIES=3" in invoke("config", "view").stdout.splitlines()


def test_set_empty_value_unsets_an_optional_setting(invoke: Callable[..., Any]) -> None:
    from headrace.settings import get_settings

    invoke("config", "set", "HEADRACE_API_URL=http://127.0.0.1:4200/api")
    assert invoke("config", "set", "HEADRACE_API_URL=").code == 0
    assert "HEADRACE_API_URL=  (from profile 'default')" in invoke("config", "view", "--show-sources").stdout
    assert get_settings().api_url is None


def test_set_fails_for_an_unknown_selected_profile(invoke: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_PROFILE", "nope")
    ran = invoke("config", "set", "HEADRACE_DEBUG=true")
    assert ran.code == 1
    assert ran.stderr.startswith("error: unknown profile 'nope' (selected by HEADRACE_PROFILE in the environment)")


# -- unset ------------------------------------------------------------------------------------------


def test_unset_removes_a_value(invoke: Callable[..., Any], home: Path) -> None:
    invoke("config", "set", "HEADRACE_DEBUG=true", "HEADRACE_CLIENT_MAX_RETRIES=2")
    ran = invoke("config", "unset", "debug")
    assert ran.code == 0, ran.stderr
    assert ran.stdout == "unset HEADRACE_DEBUG in profile default\n"
    assert _profile(home) == {"HEADRACE_CLIENT_MAX_RETRIES": "2"}


def test_unset_something_not_set_changes_nothing(invoke: Callable[..., Any], home: Path) -> None:
    invoke("config", "set", "HEADRACE_DEBUG=true")
    ran = invoke("config", "unset", "HEADRACE_DEBUG", "HEADRACE_API_URL")
    assert ran.code == 1
    assert ran.stderr == "error: HEADRACE_API_URL is not set in profile 'default'; nothing was changed\n"
    assert _profile(home) == {"HEADRACE_DEBUG": "true"}


def test_unset_an_unknown_name_suggests(invoke: Callable[..., Any]) -> None:
    ran = invoke("config", "unset", "HEADRACE_DEBGU")
    assert ran.code == 1
    assert "did you mean HEADRACE_DEBUG?" in ran.stderr


def test_unset_removes_an_obsolete_name_written_by_hand(
    invoke: Callable[..., Any], home: Path, write_profiles: WriteFile
) -> None:
    write_profiles('[profiles.default]\nHEADRACE_OLD_THING = "1"\n')
    assert invoke("config", "unset", "HEADRACE_OLD_THING").code == 0
    assert _profile(home) == {}
