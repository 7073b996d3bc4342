"""``headrace server start`` runs its start-up with the garbage collector off, and never leaves it off.

(Serving itself is covered by the server tests and ``tests/core/records``; no timing here, see
benchmarks/bench_server.py.)"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from headrace.cli.server import _gc_paused_until_started


@pytest.fixture
def gc_enabled_afterwards() -> Iterator[None]:
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("gc_enabled_afterwards")
def test_the_collector_is_off_during_start_up_and_on_again_after() -> None:
    gc.enable()
    with _gc_paused_until_started():
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("gc_enabled_afterwards")
def test_the_collector_is_on_again_when_start_up_fails() -> None:
    gc.enable()
    with pytest.raises(SystemExit), _gc_paused_until_started():
        raise SystemExit(1)
    assert gc.isenabled()


@pytest.mark.usefixtures("gc_enabled_afterwards")
def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with _gc_paused_until_started():
        pass
    assert not gc.isenabled()


@pytest.mark.usefixtures("gc_enabled_afterwards")
def test_start_with_an_invalid_setting_leaves_the_collector_on(
    invoke: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    gc.enable()
    monkeypatch.setenv("HEADRACE_SERVER_API_PORT", "not-a-port")
    ran = invoke("server", "start")
    assert ran.code == 1
    assert "HEADRACE_SERVER_API_PORT" in ran.stderr
    assert gc.isenabled()
