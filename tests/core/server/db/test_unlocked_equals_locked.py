"""The unlocked (autocommit, compare-and-set) flow-run paths on PostgreSQL answer and store as the locked path.

Differential: each script of creates and proposals is played twice on the same PostgreSQL database, once
as the server does it (unlocked first) and once with the unlocked paths switched off (the locked path
only), under the same frozen clock. Every answer, every problem and every stored row must be the same
once the ids are renamed in order of appearance.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from headrace.schemas.runs import FlowRunCreate, SetStateRequest
from headrace.schemas.states import State, StateDetails, StateType
from headrace.server.db import Database, models
from headrace.server.errors import Problem
from headrace.server.operations import flow_runs as flow_runs_module
from headrace.server.operations.flow_runs import create_flow_run, set_flow_run_state
from headrace.server.operations.flows import ensure_flow
from headrace.settings import Settings

ON_POSTGRESQL = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
BASE = datetime(2030, 1, 1, tzinfo=timezone.utc)
S = StateType

Step = tuple[str, Any]
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class _Names:
    """Renames UUIDs in order of first appearance, so two plays with different ids compare equal."""

    def __init__(self) -> None:
        self.names: dict[uuid.UUID, str] = {}

    def __call__(self, value: Any) -> Any:  # noqa: PLR0911 - one case per kind of value
        if isinstance(value, BaseModel):
            return self(value.model_dump(mode="python"))
        if isinstance(value, uuid.UUID):
            return self.names.setdefault(value, f"id{len(self.names)}")
        if isinstance(value, str):
            try:
                return self(uuid.UUID(value))
            except ValueError:
                return _UUID.sub(lambda match: str(self(uuid.UUID(match.group()))), value)
        if isinstance(value, dict):
            return {key: self(item) for key, item in sorted(value.items())}
        if isinstance(value, list | tuple):
            return [self(item) for item in value]
        return value


async def _play(database: Database, script: list[Step], clock: list[datetime]) -> list[Any]:
    """Play ``script``: ("create", kwargs) and ("set", (create number, State, force)) steps, one second apart.

    Ids are the same in every play (the database is emptied first): run ``n`` is the ``n``-th create's id.
    """
    async with database.write() as session:
        await session.execute(sa.text("TRUNCATE flow_run_states, flow_runs, flows CASCADE"))
        flow_id, _ = await ensure_flow(database, session, "review")
    creates = [step for step in script if step[0] == "create"]
    runs = [uuid.UUID(int=1000 + number) for number in range(len(creates))]
    made = 0
    log: list[Any] = []
    for index, (kind, arguments) in enumerate(script):
        clock[0] = BASE + timedelta(seconds=index)
        try:
            if kind == "create":
                fields = dict(arguments)
                run_id = runs[fields.pop("same_as")] if "same_as" in fields else runs[made]
                made += 1
                if fields.pop("unknown_flow", False):
                    fields["flow_id"] = uuid.UUID(int=99)
                elif "flow_name" not in fields:
                    fields["flow_id"] = flow_id
                run, created = await create_flow_run(database, FlowRunCreate(id=run_id, **fields))
                log.append(("created", created, run))
            else:
                which, state, force = arguments
                target = uuid.UUID(int=98) if which is None else runs[which]
                result, written = await set_flow_run_state(database, target, SetStateRequest(state=state, force=force))
                log.append(("set", written, result))
        except Problem as problem:
            log.append(("problem", problem.status, problem.kind, problem.detail))
        except sa.exc.SQLAlchemyError as error:
            log.append(("error", type(error).__name__))
    async with database.read() as session:
        for run_id in runs:
            row = (
                await session.execute(sa.select(models.FlowRun.__table__).where(models.FlowRun.id == run_id))
            ).first()
            history = (
                await session.execute(
                    sa.select(models.FlowRunState.__table__)
                    .where(models.FlowRunState.flow_run_id == run_id)
                    .order_by(models.FlowRunState.timestamp)
                )
            ).all()
            log.append(("stored", row._asdict() if row else None, [state._asdict() for state in history]))
    return log


def _state(kind: StateType, id: uuid.UUID | None = None, **details: Any) -> State:
    state = State(type=kind, state_details=StateDetails(**details))
    return state if id is None else state.model_copy(update={"id": id})


SCRIPTS: dict[str, list[Step]] = {
    "lifecycle": [
        ("create", {}),
        ("set", (0, _state(S.PENDING), False)),
        ("set", (0, _state(S.RUNNING), False)),
        ("set", (0, _state(S.COMPLETED), False)),
        ("set", (0, _state(S.RUNNING), False)),
    ],
    "scheduled_in_the_future_and_retries": [
        (
            "create",
            {
                "state": _state(S.SCHEDULED, scheduled_time=BASE + timedelta(seconds=3)),
                "max_retries": 1,
                "retry_delay_seconds": 5.0,
            },
        ),
        ("set", (0, _state(S.PENDING), False)),
        ("set", (0, _state(S.SCHEDULED, scheduled_time=BASE + timedelta(seconds=2)), False)),
        ("set", (0, _state(S.PENDING), False)),
        ("set", (0, _state(S.PENDING), False)),
        ("set", (0, _state(S.RUNNING), False)),
        ("set", (0, _state(S.FAILED), False)),
        ("set", (0, _state(S.PENDING), False)),
        ("set", (0, _state(S.SCHEDULED, scheduled_time=BASE), False)),
    ],
    "replays_and_idempotency": [
        ("create", {"idempotency_key": "k"}),
        ("create", {"same_as": 0}),
        ("create", {"idempotency_key": "k"}),
        ("set", (0, _state(S.PENDING, id=uuid.UUID(int=5)), False)),
        ("set", (0, _state(S.PENDING, id=uuid.UUID(int=5)), False)),
        ("set", (0, _state(S.RUNNING, transition_id=uuid.UUID(int=7)), False)),
        ("set", (0, _state(S.RUNNING, transition_id=uuid.UUID(int=7)), False)),
        ("create", {}),
        ("set", (3, _state(S.PENDING, id=uuid.UUID(int=5)), False)),
        ("set", (None, _state(S.PENDING), False)),
    ],
    "creates_refused_or_odd": [
        ("create", {"unknown_flow": True}),
        ("create", {"state": _state(S.PAUSED)}),
        ("create", {"flow_name": "review-new-flow"}),
        (
            "create",
            {"state": _state(S.RUNNING, id=uuid.UUID(int=6)), "name": "named", "tags": ["a"], "parameters": {"x": 1}},
        ),
        ("create", {"state": _state(S.RUNNING, id=uuid.UUID(int=6))}),
        ("create", {"state": _state(S.COMPLETED)}),
    ],
    # A late duplicate of an applied proposal, when the rules would now write a state of their own (the
    # pause timed out: Failed): the answer is still "already applied", whatever the server remembers.
    "replay_after_a_pause_timed_out": [
        ("create", {"state": _state(S.RUNNING, id=uuid.UUID(int=8))}),
        ("set", (0, _state(S.PAUSED, pause_timeout=BASE + timedelta(seconds=2)), False)),
        ("create", {}),
        ("create", {}),
        ("set", (0, _state(S.RUNNING, id=uuid.UUID(int=8)), False)),
        ("set", (2, _state(S.PENDING), False)),
        ("set", (2, _state(S.PENDING, id=uuid.UUID(int=8)), False)),
    ],
    "forced_pause_cancel": [
        ("create", {"state": _state(S.RUNNING)}),
        ("set", (0, _state(S.PAUSED, pause_key="a"), False)),
        ("set", (0, _state(S.RUNNING), False)),
        ("set", (0, _state(S.PAUSED, pause_key="a"), False)),
        ("set", (0, _state(S.PAUSED, pause_timeout=BASE + timedelta(seconds=5)), False)),
        ("set", (0, _state(S.RUNNING), False)),
        ("set", (0, _state(S.CANCELLING), False)),
        ("set", (0, _state(S.COMPLETED), False)),
        ("set", (0, _state(S.SCHEDULED), True)),
        ("set", (0, _state(S.PENDING), False)),
        ("set", (0, _state(S.CANCELLING), True)),
        ("set", (0, _state(S.SCHEDULED, rerun=True), False)),
    ],
}


@ON_POSTGRESQL
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_the_unlocked_paths_answer_and_store_as_the_locked_path(
    script: str, server_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [BASE]
    monkeypatch.setattr(flow_runs_module, "utcnow", lambda: clock[0])
    seen: dict[str, Any] = {}

    async def play(unlocked: bool) -> list[Any]:
        async with Database.from_settings(server_settings) as database:
            assert database.supports_autocommit
            if not unlocked:
                database._autocommit_engine = None  # the locked path only, as before the change
            return await _play(database, SCRIPTS[script], clock)

    def calls(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        async def counting(*args: Any) -> Any:
            seen[name] = seen.get(name, 0) + 1
            return await original(*args)

        return counting

    monkeypatch.setattr(flow_runs_module, "_set_state_unlocked", calls("set", flow_runs_module._set_state_unlocked))
    monkeypatch.setattr(flow_runs_module, "_create_unlocked", calls("create", flow_runs_module._create_unlocked))
    unlocked = _Names()(asyncio.run(play(True)))
    assert seen  # the unlocked paths did run
    locked = _Names()(asyncio.run(play(False)))
    for step, (a, b) in enumerate(zip(unlocked, locked, strict=True)):
        assert a == b, f"step {step} differs"
