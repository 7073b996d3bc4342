"""Profiles: selection by HEADRACE_PROFILE or the file's ``active`` entry, and the file operations."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from headrace.settings import ProfileError, ProfilesFile, SettingsError, get_settings, select_profile, setting_origins

WriteFile = Callable[[str], Path]

TWO_PROFILES = """
active = "dev"

[profiles.default]

[profiles.dev]
HEADRACE_API_URL = "http://dev:4200/api"

[profiles.prod]
HEADRACE_API_URL = "https://prod.example.com/api"
HEADRACE_LOGGING_LEVEL = "WARNING"
"""


def test_no_file_means_an_empty_default_profile(home: Path) -> None:
    profiles = ProfilesFile.load(home)
    assert profiles.active == "default"
    assert profiles.profiles == {"default": {}}
    assert not (home / "profiles.toml").exists()


def test_the_active_profile_is_used(write_profiles: WriteFile) -> None:
    write_profiles(TWO_PROFILES)
    assert get_settings().api_url == "http://dev:4200/api"
    assert setting_origins()["api_url"] == "profile 'dev'"


def test_headrace_profile_selects_another_profile(write_profiles: WriteFile, monkeypatch: pytest.MonkeyPatch) -> None:
    write_profiles(TWO_PROFILES)
    monkeypatch.setenv("HEADRACE_PROFILE", "prod")
    settings = get_settings()
    assert settings.api_url == "https://prod.example.com/api"
    assert settings.logging_level == "WARNING"
    assert setting_origins()["logging_level"] == "profile 'prod'"
    selection = select_profile()
    assert (selection.name, selection.reason) == ("prod", "HEADRACE_PROFILE in the environment")


def test_headrace_profile_in_dotenv_selects_a_profile(write_profiles: WriteFile, write_dotenv: WriteFile) -> None:
    write_profiles(TWO_PROFILES)
    write_dotenv("HEADRACE_PROFILE=prod\n")
    assert get_settings().api_url == "https://prod.example.com/api"
    assert select_profile().reason == "HEADRACE_PROFILE in the .env"


def test_unknown_profile_is_an_error_naming_it(write_profiles: WriteFile, monkeypatch: pytest.MonkeyPatch) -> None:
    write_profiles(TWO_PROFILES)
    monkeypatch.setenv("HEADRACE_PROFILE", "staging")
    with pytest.raises(SettingsError) as caught:
        get_settings()
    message = str(caught.value)
    assert message == (
        "unknown profile 'staging' (selected by HEADRACE_PROFILE in the environment); "
        "known profiles: default, dev, prod"
    )


def test_unknown_active_profile_names_the_file(home: Path, write_profiles: WriteFile) -> None:
    write_profiles('active = "gone"\n')
    with pytest.raises(SettingsError, match=r"unknown profile 'gone' \(selected by 'active' in .*profiles.toml\)"):
        get_settings()


def test_unreadable_file_is_a_clear_error(write_profiles: WriteFile) -> None:
    path = write_profiles("active = \n")
    with pytest.raises(SettingsError, match=f"cannot read {path}"):
        get_settings()


def test_hand_written_toml_numbers_and_booleans(write_profiles: WriteFile) -> None:
    write_profiles("[profiles.default]\nHEADRACE_CLIENT_MAX_RETRIES = 3\nHEADRACE_DEBUG = true\n")
    settings = get_settings()
    assert settings.client_max_retries == 3
    assert settings.debug is True


def test_hand_written_toml_arrays_and_tables(write_profiles: WriteFile) -> None:
    write_profiles(
        """
        [profiles.default]
        HEADRACE_PLUGINS_DISABLED = ["a", "b"]
        HEADRACE_CLIENT_RETRY_EXTRA_CODES = [500, 504]
        HEADRACE_CLIENT_CUSTOM_HEADERS = { X-Team = "data" }
        """
    )
    settings = get_settings()
    assert settings.plugins_disabled == ["a", "b"]
    assert settings.client_retry_extra_codes == {500, 504}
    assert settings.client_custom_headers == {"X-Team": "data"}


def test_save_and_load_round_trip(home: Path) -> None:
    profiles = ProfilesFile.load(home)
    profiles.create("prod")
    profiles.profiles["prod"]["HEADRACE_API_KEY"] = "secret"
    profiles.use("prod")
    profiles.save()
    again = ProfilesFile.load(home)
    assert again.active == "prod"
    assert again.profiles == {"default": {}, "prod": {"HEADRACE_API_KEY": "secret"}}


def test_the_file_is_readable_by_its_owner_only(home: Path) -> None:
    profiles = ProfilesFile.load(home)
    profiles.save()
    mode = stat.S_IMODE((home / "profiles.toml").stat().st_mode)
    assert mode == 0o600


def test_create_copies_another_profile(home: Path) -> None:
    profiles = ProfilesFile.load(home)
    profiles.profiles["default"]["HEADRACE_DEBUG"] = "true"
    profiles.create("copy", copy_from="default")
    assert profiles.profiles["copy"] == {"HEADRACE_DEBUG": "true"}
    profiles.profiles["copy"]["HEADRACE_DEBUG"] = "false"
    assert profiles.profiles["default"]["HEADRACE_DEBUG"] == "true"


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        (lambda p: p.create("default"), "profile 'default' already exists"),
        (lambda p: p.create("bad name"), "invalid profile name 'bad name'"),
        (lambda p: p.create("x", copy_from="nope"), "unknown profile 'nope'"),
        (lambda p: p.use("nope"), "unknown profile 'nope'; known profiles: default"),
        (lambda p: p.delete("nope"), "unknown profile 'nope'"),
        (lambda p: p.delete("default"), "profile 'default' is active; switch to another one first"),
    ],
)
def test_profile_operation_errors(home: Path, operation: Callable[[ProfilesFile], None], message: str) -> None:
    profiles = ProfilesFile.load(home)
    with pytest.raises(ProfileError, match=message):
        operation(profiles)


def test_delete_an_inactive_profile(home: Path) -> None:
    profiles = ProfilesFile.load(home)
    profiles.create("old")
    profiles.delete("old")
    assert "old" not in profiles.profiles
