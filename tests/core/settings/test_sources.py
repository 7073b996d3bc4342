"""Where values come from: argument > environment > .env in the working directory > profile > default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from headrace.settings import SettingsError, get_settings, setting_origins
from headrace.settings.bootstrap import peek_bool, raw_setting

URL_PROFILE = "http://profile:4200/api"
URL_DOTENV = "http://dotenv:4200/api"
URL_ENV = "http://env:4200/api"
URL_ARG = "http://argument:4200/api"

WriteFile = Callable[[str], Path]


def test_default_when_nothing_sets_it() -> None:
    assert get_settings().client_max_retries == 5
    assert setting_origins()["client_max_retries"] == "default"


def test_profile_beats_default(write_profiles: WriteFile) -> None:
    write_profiles(f'active = "default"\n[profiles.default]\nHEADRACE_API_URL = "{URL_PROFILE}"\n')
    assert get_settings().api_url == URL_PROFILE
    assert setting_origins()["api_url"] == "profile 'default'"


def test_dotenv_beats_profile(write_profiles: WriteFile, write_dotenv: WriteFile) -> None:
    write_profiles(f'[profiles.default]\nHEADRACE_API_URL = "{URL_PROFILE}"\n')
    write_dotenv(f"HEADRACE_API_URL={URL_DOTENV}\n")
    assert get_settings().api_url == URL_DOTENV
    assert setting_origins()["api_url"] == ".env"


def test_environment_beats_dotenv(
    write_profiles: WriteFile, write_dotenv: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_profiles(f'[profiles.default]\nHEADRACE_API_URL = "{URL_PROFILE}"\n')
    write_dotenv(f"HEADRACE_API_URL={URL_DOTENV}\n")
    monkeypatch.setenv("HEADRACE_API_URL", URL_ENV)
    assert get_settings().api_url == URL_ENV
    assert setting_origins()["api_url"] == "environment"


def test_argument_beats_everything(
    write_profiles: WriteFile, write_dotenv: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_profiles(f'[profiles.default]\nHEADRACE_API_URL = "{URL_PROFILE}"\n')
    write_dotenv(f"HEADRACE_API_URL={URL_DOTENV}\n")
    monkeypatch.setenv("HEADRACE_API_URL", URL_ENV)
    assert get_settings(api_url=URL_ARG).api_url == URL_ARG
    assert setting_origins(api_url=URL_ARG)["api_url"] == "argument"


def test_each_setting_takes_its_own_highest_source(
    write_profiles: WriteFile, write_dotenv: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_profiles(
        """
        [profiles.default]
        HEADRACE_CLIENT_MAX_RETRIES = "1"
        HEADRACE_CLIENT_METRICS_PORT = "9001"
        HEADRACE_LOGGING_LEVEL = "ERROR"
        """
    )
    write_dotenv("HEADRACE_CLIENT_METRICS_PORT=9002\nHEADRACE_LOGGING_LEVEL=WARNING\n")
    monkeypatch.setenv("HEADRACE_LOGGING_LEVEL", "DEBUG")
    settings = get_settings()
    assert (settings.client_max_retries, settings.client_metrics_port, settings.logging_level) == (1, 9002, "DEBUG")
    origins = setting_origins()
    assert origins["client_max_retries"] == "profile 'default'"
    assert origins["client_metrics_port"] == ".env"
    assert origins["logging_level"] == "environment"
    assert origins["debug"] == "default"


def test_dotenv_is_read_from_the_working_directory_only(
    tmp_path: Path, write_dotenv: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dotenv(f"HEADRACE_API_URL={URL_DOTENV}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert get_settings().api_url is None


def test_dotenv_ignores_other_variables(write_dotenv: WriteFile) -> None:
    write_dotenv("DATABASE_URL=postgres://x\nHEADRACE_DEBUG=1\n")
    assert get_settings().debug is True


def test_environment_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("headrace_client_max_retries", "2")
    assert get_settings().client_max_retries == 2
    assert raw_setting("client_max_retries") == ("2", "environment")


def test_empty_value_unsets_an_optional_setting_set_by_a_profile(
    write_profiles: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_profiles(f'[profiles.default]\nHEADRACE_API_URL = "{URL_PROFILE}"\nHEADRACE_API_KEY = "k"\n')
    monkeypatch.setenv("HEADRACE_API_URL", "")
    monkeypatch.setenv("HEADRACE_API_KEY", "")
    settings = get_settings()
    assert settings.api_url is None
    assert settings.api_key is None


def test_empty_value_of_a_required_setting_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_CLIENT_MAX_RETRIES", "")
    with pytest.raises(SettingsError, match="HEADRACE_CLIENT_MAX_RETRIES"):
        get_settings()


def test_empty_optional_timeout_means_no_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_settings().server_database_statement_timeout == 10.0
    monkeypatch.setenv("HEADRACE_SERVER_DATABASE_STATEMENT_TIMEOUT", "")
    assert get_settings().server_database_statement_timeout is None


# -- list settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a, b", ["a", "b"]), ("a,b,", ["a", "b"]), (" single ", ["single"]), ("", []), (" , ", [])],
)
def test_plugins_disabled_is_a_comma_list(raw: str, expected: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_PLUGINS_DISABLED", raw)
    assert get_settings().plugins_disabled == expected


def test_comma_lists_from_a_profile(write_profiles: WriteFile) -> None:
    write_profiles('[profiles.default]\nHEADRACE_PLUGINS_DISABLED = "x-plugin, other"\n')
    assert get_settings().plugins_disabled == ["x-plugin", "other"]


def test_retry_extra_codes_is_a_comma_list_of_ints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_CLIENT_RETRY_EXTRA_CODES", "500,504, 520")
    assert get_settings().client_retry_extra_codes == {500, 504, 520}


def test_lists_as_arguments() -> None:
    settings = get_settings(plugins_disabled=["a"], client_retry_extra_codes=[500])
    assert settings.plugins_disabled == ["a"]
    assert settings.client_retry_extra_codes == {500}


def test_custom_headers_are_a_json_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_CLIENT_CUSTOM_HEADERS", '{"X-Team": "data", "X-Env": "prod"}')
    assert get_settings().client_custom_headers == {"X-Team": "data", "X-Env": "prod"}


# -- HEADRACE_HOME ---------------------------------------------------------------------------------


def test_home_from_dotenv_decides_where_profiles_are(tmp_path: Path, write_dotenv: WriteFile, monkeypatch) -> None:
    other_home = tmp_path / "other-home"
    other_home.mkdir()
    (other_home / "profiles.toml").write_text('[profiles.default]\nHEADRACE_DEBUG = "true"\n', encoding="utf-8")
    monkeypatch.delenv("HEADRACE_HOME")
    write_dotenv(f"HEADRACE_HOME={other_home}\n")
    settings = get_settings()
    assert settings.home == other_home
    assert settings.debug is True


def test_home_argument_decides_where_profiles_are(tmp_path: Path) -> None:
    other_home = tmp_path / "arg-home"
    other_home.mkdir()
    (other_home / "profiles.toml").write_text('[profiles.default]\nHEADRACE_DEBUG = "true"\n', encoding="utf-8")
    assert get_settings(home=other_home).debug is True
    assert get_settings().debug is False


def test_a_profile_cannot_move_home(home: Path, tmp_path: Path, write_profiles: WriteFile) -> None:
    write_profiles(f'[profiles.default]\nHEADRACE_HOME = "{tmp_path / "moved"}"\n')
    assert get_settings().home == home


# -- the cheap reader used at CLI start-up agrees with the full loader ------------------------------


@pytest.mark.parametrize("layers", [(), ("profile",), ("profile", "dotenv"), ("profile", "dotenv", "env")])
def test_raw_setting_agrees_with_setting_origins(
    layers: tuple[str, ...], write_profiles: WriteFile, write_dotenv: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "profile" in layers:
        write_profiles('[profiles.default]\nHEADRACE_PLUGINS_DISABLED = "from-profile"\n')
    if "dotenv" in layers:
        write_dotenv("HEADRACE_PLUGINS_DISABLED=from-dotenv\n")
    if "env" in layers:
        monkeypatch.setenv("HEADRACE_PLUGINS_DISABLED", "from-env")
    raw, origin = raw_setting("plugins_disabled")
    assert origin == setting_origins()["plugins_disabled"]
    assert (raw or "").split(",") == (get_settings().plugins_disabled or [""])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("TRUE", True), ("yes", True), ("on", True), ("0", False), ("False", False), ("off", False)],
)
def test_peek_bool_reads_what_pydantic_reads(raw: str, expected: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_PLUGINS_STRICT", raw)
    assert peek_bool("plugins_strict", not expected, fallback=lambda: pytest.fail("no fallback expected")) is expected
    assert get_settings().plugins_strict is expected


def test_peek_bool_leaves_anything_else_to_the_full_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_PLUGINS_STRICT", " true")
    assert peek_bool("plugins_strict", False, fallback=lambda: True) is True
    with pytest.raises(SettingsError, match="HEADRACE_PLUGINS_STRICT"):
        get_settings()


def test_peek_bool_default_when_unset() -> None:
    assert peek_bool("plugins_strict", False, fallback=lambda: pytest.fail("no fallback expected")) is False
