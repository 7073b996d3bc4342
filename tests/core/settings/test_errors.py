"""Invalid values: one clear line per setting, naming the variable, its source and what was expected."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from headrace.settings import Settings, SettingsError, get_settings
from headrace.settings.loader import field_for_env_name

WriteFile = Callable[[str], Path]


def _error(**overrides: object) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        get_settings(**overrides)
    return caught.value


def test_invalid_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_LOGGING_LEVEL", "LOUD")
    assert str(_error()) == (
        "invalid setting HEADRACE_LOGGING_LEVEL='LOUD' (from environment): "
        "Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"
    )


def test_invalid_profile_value(write_profiles: WriteFile) -> None:
    write_profiles('[profiles.default]\nHEADRACE_CLIENT_MAX_RETRIES = "many"\n')
    assert str(_error()) == (
        "invalid setting HEADRACE_CLIENT_MAX_RETRIES='many' (from profile 'default'): "
        "Input should be a valid integer, unable to parse string as an integer"
    )


def test_invalid_dotenv_value(write_dotenv: WriteFile) -> None:
    write_dotenv("HEADRACE_API_URL=localhost:4200\n")
    assert str(_error()) == (
        "invalid setting HEADRACE_API_URL='localhost:4200' (from .env): "
        "expected an http:// or https:// URL, such as http://127.0.0.1:4200/api"
    )


def test_invalid_argument() -> None:
    assert str(_error(client_metrics_port=70000)) == (
        "invalid setting HEADRACE_CLIENT_METRICS_PORT=70000 (from argument): "
        "Input should be less than or equal to 65535"
    )


def test_one_line_per_invalid_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_DEBUG", "perhaps")
    monkeypatch.setenv("HEADRACE_CLIENT_RETRY_JITTER_FACTOR", "-1")
    error = _error()
    lines = str(error).splitlines()
    assert len(lines) == 2
    assert {problem.name for problem in error.problems} == {"HEADRACE_DEBUG", "HEADRACE_CLIENT_RETRY_JITTER_FACTOR"}
    assert all(line.startswith("invalid setting HEADRACE_") and "(from environment)" in line for line in lines)


def test_bad_items_of_a_list_are_named_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_CLIENT_RETRY_EXTRA_CODES", "500,abc,xyz")
    assert str(_error()) == (
        "invalid setting HEADRACE_CLIENT_RETRY_EXTRA_CODES='500,abc,xyz' (from environment): "
        "Input should be a valid integer, unable to parse string as an integer (items 'abc', 'xyz')"
    )


def test_status_codes_out_of_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_CLIENT_RETRY_EXTRA_CODES", "500,700")
    assert "expected HTTP status codes between 100 and 599, got [700]" in str(_error())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{bad", 'expected a JSON object such as {"X-Team": "data"}, but it is not valid JSON'),
        ('["X-Team"]', 'expected a JSON object such as {"X-Team": "data"}, got a JSON list'),
        ('{"X-Count": 3}', "Input should be a valid string (item 3)"),
    ],
)
def test_custom_headers_must_be_a_json_object_of_strings(
    raw: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADRACE_CLIENT_CUSTOM_HEADERS", raw)
    message = str(_error())
    assert message.startswith(f"invalid setting HEADRACE_CLIENT_CUSTOM_HEADERS={raw!r} (from environment): ")
    assert expected in message
    assert "\n" not in message


def test_secret_values_are_masked_in_errors() -> None:
    message = str(_error(api_key=12345))
    assert message.startswith("invalid setting HEADRACE_API_KEY='********' (from argument)")
    assert "12345" not in message


def test_the_error_is_a_value_error_with_structured_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_DEBUG", "perhaps")
    error = _error()
    assert isinstance(error, ValueError)
    (problem,) = error.problems
    assert (problem.name, problem.value, problem.origin) == ("HEADRACE_DEBUG", "'perhaps'", "environment")
    assert "valid boolean" in problem.message


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ("HEADRACE_API_URL", "api_url"),
        ("api_url", "api_url"),
        ("headrace_api_url", "api_url"),
        (" API_URL ", "api_url"),
    ],
)
def test_setting_names_in_any_form(given: str, field: str) -> None:
    assert field_for_env_name(given) == field


def test_unknown_setting_names_suggest_close_ones() -> None:
    with pytest.raises(SettingsError) as caught:
        field_for_env_name("HEADRACE_API_ULR")
    assert str(caught.value).startswith("unknown setting 'HEADRACE_API_ULR'; did you mean HEADRACE_API_URL")


def test_unknown_setting_names_without_a_close_one() -> None:
    with pytest.raises(SettingsError, match="unknown setting 'zzz'; see 'headrace config view --show-defaults'"):
        field_for_env_name("zzz")


def test_validator_names_are_unique_across_the_groups() -> None:
    """A validator in one group with the name of one in another would silently replace it."""
    seen: dict[str, str] = {}
    for group in Settings.__mro__:
        decorators = group.__dict__.get("__pydantic_decorators__")
        if decorators is None or group is Settings:
            continue
        for name in decorators.field_validators:
            assert name not in seen, f"{group.__name__}.{name} shadows {seen[name]}.{name}"
            seen[name] = group.__name__
    assert seen  # the groups do have validators
