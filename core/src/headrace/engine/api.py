"""How the engine reaches settings and the orchestration API, cheaply enough for the hot path.

* :func:`current_settings` reads settings at the edge — when a flow (or a task outside any flow) is called —
  and reuses the object while nothing it is read from has changed (the ``HEADRACE_*`` environment, the
  working directory's ``.env``, ``profiles.toml``). Validating settings costs milliseconds; an empty flow
  run has a budget of ten.
* :class:`EngineApi` is the one client a process uses per API (one per distinct settings), opened once on
  the process's event loop and closed at exit. It offers the two calls the flow engine makes, as blocking
  methods for the sync shell and through :meth:`EngineApi.call_async` for the async shell — which awaits
  the call on the process loop from whatever loop the user's flow runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headrace.client.base import OrchestrationClient
    from headrace.schemas.runs import FlowRun, FlowRunCreate, OrchestrationResult
    from headrace.schemas.states import State
    from headrace.settings import Settings

__all__ = ["EngineApi", "close_apis", "current_settings", "engine_api", "prepare_process"]

_settings_lock = threading.Lock()
_settings_cache: tuple[tuple[Any, ...], Settings] | None = None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _settings_key() -> tuple[Any, ...]:
    raw = getattr(os.environ, "_data", None)  # CPython's undecoded copy: eight times faster to scan
    if isinstance(raw, dict):
        environment = tuple(sorted(item for item in raw.items() if item[0][:9] in (b"HEADRACE_", "HEADRACE_")))
    else:
        environment = tuple(sorted((key, value) for key, value in os.environ.items() if key.startswith("HEADRACE_")))
    cwd = os.getcwd()
    home = Path(os.environ.get("HEADRACE_HOME") or Path.home() / ".headrace").expanduser()
    return environment, cwd, _mtime(Path(cwd) / ".env"), _mtime(home / "profiles.toml")


def current_settings() -> Settings:
    """The settings in force now (see the module docstring for when they are read again)."""
    global _settings_cache  # noqa: PLW0603 - one cached value per process
    key = _settings_key()
    cached = _settings_cache
    if cached is not None and cached[0] == key:
        return cached[1]
    from headrace.settings import get_settings

    settings = get_settings()
    with _settings_lock:
        _settings_cache = (key, settings)
    return settings


def _api_key(settings: Settings) -> tuple[Any, ...]:
    database = settings.server_database_connection_url
    api_key = settings.api_key
    return (
        settings.api_url,
        str(settings.home),
        database.get_secret_value() if database is not None else None,
        api_key.get_secret_value() if api_key is not None else None,
    )


class EngineApi:
    """The orchestration calls the flow engine makes, on one long-lived client."""

    def __init__(self, client: OrchestrationClient) -> None:
        self.client = client

    # blocking calls, for the sync shell
    def create_flow_run(self, data: FlowRunCreate) -> FlowRun:
        from headrace.client.sync import run_sync

        return run_sync(self.client.create_flow_run(data))

    def set_flow_run_state(self, flow_run_id: Any, state: State) -> OrchestrationResult:
        from headrace.client.sync import run_sync

        return run_sync(self.client.set_flow_run_state(flow_run_id, state))

    # awaitable calls, for the async shell
    async def call_async(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from headrace.client.sync import get_loop, in_loop_thread

        coroutine = getattr(self.client, method)(*args, **kwargs)
        if in_loop_thread():
            return await coroutine
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, get_loop()))


_apis: dict[tuple[Any, ...], EngineApi] = {}
_apis_lock = threading.Lock()


def engine_api(settings: Settings) -> EngineApi:
    """The process's :class:`EngineApi` for ``settings`` (opened on first use, closed at exit)."""
    key = _api_key(settings)
    api = _apis.get(key)
    if api is not None:
        return api
    with _apis_lock:
        api = _apis.get(key)
        if api is None:
            from headrace.client import get_client
            from headrace.client.sync import freeze_start_up_objects, run_sync

            client = get_client(settings)
            run_sync(client.__aenter__())
            api = EngineApi(client)
            freeze_start_up_objects("engine")
            if not _apis:
                from headrace.client.sync import on_exit

                on_exit(close_apis, order=50)  # after run records are flushed (0), before the database closes (100)
            _apis[key] = api
        return api


def close_apis() -> None:
    """Close every client the engine opened (at exit; tests call it to start afresh)."""
    from headrace.client.sync import run_sync

    with _apis_lock:
        apis = list(_apis.values())
        _apis.clear()
    for api in apis:
        with contextlib.suppress(Exception):  # closing at exit: nothing useful to do with a failure
            run_sync(api.client.__aexit__(None, None, None), timeout=10)


def prepare_process(settings: Settings) -> None:
    """Point this process's run records and run logs at ``settings`` (cheap when nothing changed)."""
    from headrace import records
    from headrace.run_logging import configure_console

    configure_console(settings)
    if records._settings is not settings:
        records.configure(settings)
        records.install_run_log_handler(settings)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_apis.clear)
