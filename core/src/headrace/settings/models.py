"""The settings themselves: one flat model whose field names are the environment variable names.

Every field ``foo_bar`` is read from ``HEADRACE_FOO_BAR``. The names and defaults mirror the
incumbent's settings (see ``docs/settings.md``), so an operator can translate a deployment one
variable at a time. Fields are grouped into small mixins by area only to keep each group readable;
the model users see is the flat :class:`Settings` in :mod:`headrace.settings`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from headrace.settings.bootstrap import split_commas

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _default_home() -> Path:
    return Path.home() / ".headrace"


def _split_commas(value: Any) -> Any:
    """Accept ``"a, b"`` as well as a list, because operators write lists in environment variables."""
    return split_commas(value) if isinstance(value, str) else value


# Validator names must be unique across these groups: Settings inherits from all of them, and a
# validator of one group would silently replace a namesake of another.


class _Group(BaseModel):
    """A group of fields: a mixin of :class:`~headrace.settings.Settings`, never validated on its own.

    Why ``defer_build``: pydantic otherwise builds each group's validator when the class is made, only
    for ``Settings`` to build its own from the same fields again; the groups' were a third of the time
    the settings take to import (which every ``headrace server start`` pays). Should a group ever be
    validated on its own, pydantic builds its validator then. ``Settings`` turns it off again for itself.
    """

    model_config = ConfigDict(defer_build=True)


class HomeSettings(_Group):
    home: Path = Field(
        default_factory=_default_home,
        description="Where headrace keeps its profiles, embedded database, spool and key file.",
    )
    debug: bool = Field(default=False, description="Debug mode: more detail in errors and logs.")

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()


class ApiSettings(_Group):
    api_url: str | None = Field(
        default=None,
        description="The server to talk to. Unset means the embedded default: runs are recorded in the "
        "SQLite database under HEADRACE_HOME, in-process.",
    )
    api_key: SecretStr | None = Field(default=None, description="API key sent as a bearer token.")
    api_enable_http2: bool = Field(default=False, description="Use HTTP/2 for requests to the API.")
    api_tls_insecure_skip_verify: bool = Field(
        default=False, description="Skip TLS certificate verification for the API (never in production)."
    )
    api_ssl_cert_file: Path | None = Field(default=None, description="CA bundle used to verify the API.")
    api_request_timeout: float = Field(default=60.0, gt=0, description="Seconds before an API call times out.")

    @field_validator("api_url")
    @classmethod
    def _check_api_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL, such as http://127.0.0.1:4200/api")
        return value.rstrip("/")


class ClientSettings(_Group):
    client_max_retries: int = Field(default=5, ge=0, description="Retries of a failed API request.")
    client_retry_jitter_factor: float = Field(
        default=0.2, ge=0, description="Random spread added to each retry delay, as a fraction of it."
    )
    client_retry_extra_codes: Annotated[set[int], NoDecode] = Field(
        default_factory=set,
        description="HTTP status codes retried in addition to 408, 429, 502 and 503 (comma-separated).",
    )
    client_csrf_support_enabled: bool = Field(
        default=True, description="Fetch and send a CSRF token when the server asks for one."
    )
    client_custom_headers: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Extra HTTP headers for every API request, as a JSON object. They cannot override "
        "Authorization, the CSRF headers or User-Agent.",
    )
    client_metrics_enabled: bool = Field(
        default=False, description="Serve Prometheus metrics from flow-running processes."
    )
    client_metrics_port: int = Field(default=4201, ge=1, le=65535, description="Port of the client metrics.")
    # Run records (task-run states and logs): spooled under HEADRACE_HOME and shipped in batches; docs/client.md.
    client_records_batch_interval: float = Field(
        default=0.1,
        gt=0,
        description="Seconds task-run state records are gathered before they are sent in one batch "
        "(logs follow HEADRACE_LOGGING_TO_API_BATCH_INTERVAL).",
    )
    client_records_flush_timeout: float = Field(
        default=5.0,
        ge=0,
        description="Seconds a process waits at exit for its run records to reach the API; what is left "
        "waits in the spool for the next headrace process or `headrace spool flush`.",
    )

    @field_validator("client_retry_extra_codes", mode="before")
    @classmethod
    def _parse_codes(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("client_custom_headers", mode="before")
    @classmethod
    def _parse_headers(cls, value: Any) -> Any:
        """Decode the JSON here rather than in pydantic-settings, so a mistake gets a clear message."""
        if not isinstance(value, str):
            return value
        if not value.strip():
            return {}
        example = 'such as {"X-Team": "data"}'
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"expected a JSON object {example}, but it is not valid JSON: {exc.msg}") from None
        if not isinstance(decoded, dict):
            raise ValueError(f"expected a JSON object {example}, got a JSON {type(decoded).__name__}")
        return decoded

    @field_validator("client_retry_extra_codes")
    @classmethod
    def _check_codes(cls, value: set[int]) -> set[int]:
        bad = sorted(code for code in value if not 100 <= code <= 599)
        if bad:
            raise ValueError(f"expected HTTP status codes between 100 and 599, got {bad}")
        return value


class LoggingSettings(_Group):
    logging_level: LogLevel = Field(default="INFO", description="Level of the headrace loggers.")
    logging_to_api_enabled: bool = Field(default=True, description="Ship run logs to the API.")
    logging_to_api_batch_interval: float = Field(
        default=2.0, gt=0, description="Seconds between shipments of run logs."
    )
    logging_to_api_batch_size: int = Field(
        default=4_000_000, gt=0, description="Largest shipment of run logs, in bytes."
    )
    logging_to_api_max_log_size: int = Field(
        default=1_000_000, gt=0, description="Longest log message in characters; longer ones are truncated."
    )
    logging_to_api_when_missing_flow: Literal["warn", "error", "ignore"] = Field(
        default="warn", description="What a run logger does when used outside of a flow or task run."
    )

    @field_validator("logging_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class ServerSettings(_Group):
    server_api_host: str = Field(default="127.0.0.1", description="Address the server listens on.")
    server_api_port: int = Field(default=4200, ge=1, le=65535, description="Port the server listens on.")
    server_logging_level: LogLevel = Field(default="WARNING", description="Level of the server's loggers.")
    server_database_connection_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of the server database. Unset means SQLite at HEADRACE_HOME/headrace.db.",
    )
    server_metrics_enabled: bool = Field(default=False, description="Serve Prometheus metrics at /metrics.")
    server_csrf_protection_enabled: bool = Field(default=False, description="Require CSRF tokens from browser clients.")
    server_csrf_token_expiration: float = Field(default=3600.0, gt=0, description="Seconds a CSRF token is valid.")
    server_auth_required: bool = Field(
        default=False, description="Require an API key even before any key exists (health stays open)."
    )
    server_migrate_on_start: bool = Field(default=True, description="Upgrade the database when the server starts.")
    server_encryption_key: SecretStr | None = Field(
        default=None,
        description=(
            "Fernet key(s) that encrypt block secrets, comma-separated, the first one encrypting; unset: "
            "a key file HEADRACE_HOME/encryption.key, created once with mode 0600. Never stored in the database."
        ),
    )

    @field_validator("server_logging_level", mode="before")
    @classmethod
    def _upper_server_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class PluginSettings(_Group):
    plugins_strict: bool = Field(
        default=False, description="Turn any plugin failure into an error instead of a warning."
    )
    plugins_disabled: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Plugins (entry-point or distribution names, comma-separated) never to import.",
    )

    @field_validator("plugins_disabled", mode="before")
    @classmethod
    def _parse_disabled(cls, value: Any) -> Any:
        return _split_commas(value)


class DatabaseSettings(_Group):
    """Connection tuning for PostgreSQL; SQLite ignores the pool and TLS settings."""

    server_database_echo: bool = Field(default=False, description="Log every SQL statement (debugging only).")
    server_database_pool_size: int = Field(default=20, ge=1, description="Connections kept open in the pool.")
    server_database_max_overflow: int = Field(default=10, ge=0, description="Extra connections beyond the pool.")
    server_database_pool_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to wait for a free pooled connection."
    )
    server_database_pool_recycle: float = Field(
        default=3600.0, gt=0, description="Seconds after which a pooled connection is replaced."
    )
    server_database_connection_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait when opening a connection."
    )
    server_database_statement_timeout: float | None = Field(
        default=10.0, gt=0, description="Seconds a single SQL statement may run (PostgreSQL); unset for no limit."
    )
    server_database_sqlite_busy_timeout: float = Field(
        default=60.0, gt=0, description="Seconds SQLite waits for a lock before giving up."
    )
    server_database_search_path: str | None = Field(default=None, description="PostgreSQL schema search_path.")
    server_database_application_name: str | None = Field(
        default="headrace", description="Application name reported to PostgreSQL."
    )
    server_database_tls_enabled: bool = Field(default=False, description="Connect to PostgreSQL over TLS.")
    server_database_tls_ca_file: Path | None = Field(default=None, description="CA bundle to verify the server.")
    server_database_tls_cert_file: Path | None = Field(default=None, description="Client certificate for mutual TLS.")
    server_database_tls_key_file: Path | None = Field(default=None, description="Client key for mutual TLS.")
    server_database_tls_check_hostname: bool = Field(
        default=True, description="Check that the server certificate matches the host name."
    )


class RetentionSettings(_Group):
    """How long the server keeps history; the retention service deletes anything older."""

    server_retention_enabled: bool = Field(default=True, description="Run the retention service.")
    server_retention_flow_runs_days: float = Field(
        default=90.0, gt=0, description="Days to keep finished flow runs with their task runs and states."
    )
    server_retention_logs_days: float = Field(default=30.0, gt=0, description="Days to keep run logs.")
    server_retention_artifacts_days: float = Field(default=90.0, gt=0, description="Days to keep artifacts.")
    server_retention_events_days: float = Field(default=7.0, gt=0, description="Days to keep events.")
    server_retention_loop_seconds: float = Field(
        default=3600.0, gt=0, description="Seconds between two retention passes."
    )
