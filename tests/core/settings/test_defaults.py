"""Every setting the seed document names has its HEADRACE_ counterpart, with the incumbent's default.

The seed (the audit of the incumbent) names PREFECT_* settings; each maps to HEADRACE_* with the same
meaning and default, except that HEADRACE_API_URL is unset by default and PREFECT_CLOUD_* has no
counterpart. The table below is that list; the tests read real environment variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from headrace.settings import Settings, env_name, get_settings

# (variable, default) for every setting the seed names.
SEED_DEFAULTS: list[tuple[str, Any]] = [
    ("HEADRACE_API_URL", None),
    ("HEADRACE_API_KEY", None),
    ("HEADRACE_SERVER_DATABASE_CONNECTION_URL", None),
    ("HEADRACE_DEBUG", False),
    ("HEADRACE_LOGGING_LEVEL", "INFO"),
    ("HEADRACE_SERVER_LOGGING_LEVEL", "WARNING"),
    ("HEADRACE_LOGGING_TO_API_ENABLED", True),
    ("HEADRACE_LOGGING_TO_API_BATCH_INTERVAL", 2.0),
    ("HEADRACE_LOGGING_TO_API_BATCH_SIZE", 4_000_000),
    ("HEADRACE_LOGGING_TO_API_MAX_LOG_SIZE", 1_000_000),
    ("HEADRACE_CLIENT_MAX_RETRIES", 5),
    ("HEADRACE_CLIENT_RETRY_JITTER_FACTOR", 0.2),
    ("HEADRACE_CLIENT_RETRY_EXTRA_CODES", set()),
    ("HEADRACE_CLIENT_CUSTOM_HEADERS", {}),
    ("HEADRACE_CLIENT_CSRF_SUPPORT_ENABLED", True),
    ("HEADRACE_CLIENT_METRICS_ENABLED", False),
    ("HEADRACE_CLIENT_METRICS_PORT", 4201),
    ("HEADRACE_SERVER_METRICS_ENABLED", False),
]

# (variable, value as written in the environment, value expected in the settings)
SEED_VALUES: list[tuple[str, str, Any]] = [
    ("HEADRACE_API_URL", "http://127.0.0.1:4200/api", "http://127.0.0.1:4200/api"),
    ("HEADRACE_API_KEY", "hr_secret_key", SecretStr("hr_secret_key")),
    (
        "HEADRACE_SERVER_DATABASE_CONNECTION_URL",
        "postgresql+asyncpg://user:pw@db:5432/headrace",
        SecretStr("postgresql+asyncpg://user:pw@db:5432/headrace"),
    ),
    ("HEADRACE_DEBUG", "true", True),
    ("HEADRACE_LOGGING_LEVEL", "debug", "DEBUG"),
    ("HEADRACE_SERVER_LOGGING_LEVEL", "ERROR", "ERROR"),
    ("HEADRACE_LOGGING_TO_API_ENABLED", "false", False),
    ("HEADRACE_LOGGING_TO_API_BATCH_INTERVAL", "0.5", 0.5),
    ("HEADRACE_LOGGING_TO_API_BATCH_SIZE", "1000", 1000),
    ("HEADRACE_LOGGING_TO_API_MAX_LOG_SIZE", "200", 200),
    ("HEADRACE_CLIENT_MAX_RETRIES", "0", 0),
    ("HEADRACE_CLIENT_RETRY_JITTER_FACTOR", "0.5", 0.5),
    ("HEADRACE_CLIENT_RETRY_EXTRA_CODES", "500, 504", {500, 504}),
    ("HEADRACE_CLIENT_CUSTOM_HEADERS", '{"X-Team": "data"}', {"X-Team": "data"}),
    ("HEADRACE_CLIENT_CSRF_SUPPORT_ENABLED", "0", False),
    ("HEADRACE_CLIENT_METRICS_ENABLED", "yes", True),
    ("HEADRACE_CLIENT_METRICS_PORT", "9000", 9000),
    ("HEADRACE_SERVER_METRICS_ENABLED", "on", True),
]


def _field(variable: str) -> str:
    return variable.removeprefix("HEADRACE_").lower()


@pytest.mark.parametrize(("variable", "default"), SEED_DEFAULTS, ids=[v for v, _ in SEED_DEFAULTS])
def test_every_seed_setting_exists_with_the_incumbents_default(variable: str, default: Any) -> None:
    assert _field(variable) in Settings.model_fields, f"{variable} has no field"
    assert getattr(get_settings(), _field(variable)) == default


@pytest.mark.parametrize(("variable", "raw", "expected"), SEED_VALUES, ids=[v for v, _, _ in SEED_VALUES])
def test_every_seed_setting_is_read_from_its_variable(
    variable: str, raw: str, expected: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, raw)
    assert getattr(get_settings(), _field(variable)) == expected


def test_the_value_tables_cover_the_same_settings() -> None:
    assert [v for v, _ in SEED_DEFAULTS] == [v for v, _, _ in SEED_VALUES]


def test_no_cloud_settings() -> None:
    assert not [name for name in Settings.model_fields if name.startswith("cloud")]


def test_home_defaults_to_dot_headrace_in_the_user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADRACE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert get_settings().home == tmp_path / ".headrace"


def test_home_from_the_environment_expands_the_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HEADRACE_HOME", "~/elsewhere")
    assert get_settings().home == tmp_path / "elsewhere"


def test_field_names_map_to_variables() -> None:
    assert env_name("api_url") == "HEADRACE_API_URL"
    assert all(name == name.lower() for name in Settings.model_fields)


def test_secrets_are_secret_types() -> None:
    settings = get_settings(api_key="k", server_database_connection_url="sqlite:///x.db")
    assert isinstance(settings.api_key, SecretStr)
    assert "k" not in repr(settings.api_key)
    assert isinstance(settings.server_database_connection_url, SecretStr)
