"""Run states as flows and tasks see them: the wire :class:`~headrace.schemas.states.State` plus behaviour.

:class:`State` is the wire model with the methods a Prefect user expects (``is_completed()``,
``is_failed()``, ``result()``, …) and, for states the engine produced in this process, the value or the
exception of the run kept in memory. ``state.data`` only ever holds a *result reference* (where a persisted
result lives), never the value itself, so states travel over the wire unchanged.

The constructors (``Completed()``, ``Failed()``, ``Cached()``, ``TimedOut()``, …) build states of the nine
types and of the named states on top of them::

    from headrace.states import Completed, Failed

    @flow
    def guarded():
        return Failed(message="nothing to do today")   # the flow run ends Failed
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from pydantic import PrivateAttr

from headrace.engine.ids import new_id
from headrace.exceptions import CancelledRun, CrashedRun, FailedRun, MissingResult, UnfinishedRun
from headrace.schemas.states import NAMED_STATES, TERMINAL_STATE_TYPES, StateDetails, StateType
from headrace.schemas.states import State as WireState

__all__ = [
    "AwaitingRetry",
    "Cached",
    "Cancelled",
    "Cancelling",
    "Completed",
    "Crashed",
    "Failed",
    "Late",
    "Paused",
    "Pending",
    "Retrying",
    "Running",
    "Scheduled",
    "State",
    "StateDetails",
    "StateType",
    "TimedOut",
    "to_sdk_state",
]


class _Unset:
    """ "No value in memory": one object per process, kept by copying and pickling (pydantic deep-copies
    private defaults, and states travel between processes)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __copy__(self) -> _Unset:
        return self

    def __deepcopy__(self, memo: object) -> _Unset:
        return self

    def __reduce__(self) -> str:
        return "_UNSET"

    def __repr__(self) -> str:
        return "<no value>"


_UNSET: Any = _Unset()


class State(WireState):
    """A run state. ``result()`` returns the run's value, or raises what failed it."""

    _value: Any = PrivateAttr(default=_UNSET)

    # -- what kind of state ---------------------------------------------------------------------

    def is_scheduled(self) -> bool:
        return self.type is StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type is StateType.PENDING

    def is_running(self) -> bool:
        return self.type is StateType.RUNNING

    def is_completed(self) -> bool:
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type is StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type is StateType.CRASHED

    def is_cancelling(self) -> bool:
        return self.type is StateType.CANCELLING

    def is_cancelled(self) -> bool:
        return self.type is StateType.CANCELLED

    def is_paused(self) -> bool:
        return self.type is StateType.PAUSED

    def is_final(self) -> bool:
        return self.type in TERMINAL_STATE_TYPES

    # -- the value --------------------------------------------------------------------------------

    @property
    def has_value(self) -> bool:
        """Whether this process holds the run's value (or exception) in memory."""
        return self._value is not _UNSET

    def with_value(self, value: Any) -> State:
        """This state, holding ``value`` (a result, or the exception of a failed run) in memory."""
        private = self.__pydantic_private__
        if private is None:
            self._value = value
        else:
            private["_value"] = value  # what `self._value = value` does, without pydantic's __setattr__
        return self

    def result(self, raise_on_failure: bool = True) -> Any:
        """The run's return value; for a run that did not complete, raise why (or return it).

        * Completed: the value kept in memory, else the persisted result the reference in ``data`` points
          to; :class:`~headrace.exceptions.MissingResult` when it is neither.
        * Failed, Crashed, Cancelled: raise the exception that ended the run (or :class:`FailedRun`,
          :class:`CrashedRun`, :class:`CancelledRun` carrying the state's message when the exception is not
          in this process). With ``raise_on_failure=False`` that exception is returned instead.
        * Any other state: :class:`~headrace.exceptions.UnfinishedRun`.
        """
        if self.type is StateType.COMPLETED:
            if self.has_value:
                return self._value
            return self._load_persisted()
        if self.type in (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED):
            error = self._error()
            if raise_on_failure:
                raise error
            return error
        raise UnfinishedRun(f"the run is {self.name}, not finished: it has no result yet")

    def _error(self) -> BaseException:
        if self.has_value and isinstance(self._value, BaseException):
            return self._value
        message = self.message or f"the run ended {self.name}"
        if self.type is StateType.CRASHED:
            return CrashedRun(message)
        if self.type is StateType.CANCELLED:
            return CancelledRun(message)
        return FailedRun(message)

    def _load_persisted(self) -> Any:
        from headrace.results import ResultReference

        reference = ResultReference.from_data(self.data)
        if reference is None:
            raise MissingResult(
                "the run completed, but its result is neither in this process nor persisted; "
                "set persist_result=True on the flow or task to keep it"
            )
        value = reference.load()
        self._value = value
        return value

    def __repr__(self) -> str:
        label = self.name if self.name == self.type.default_name else f"{self.name}({self.type.value})"
        message = f", message={self.message!r}" if self.message else ""
        return f"State<{label}{message}>"

    __str__ = __repr__


def to_sdk_state(state: WireState) -> State:
    """The SDK form of a state received from the API (the same fields; nothing in memory)."""
    if isinstance(state, State):
        return state
    sdk_state: State = assemble(State, {name: getattr(state, name) for name in _STATE_FIELDS})
    return sdk_state


# -- building states on the hot path ---------------------------------------------------------------
#
# A task run builds two or three states, and on the hot path pydantic's validation (or model_construct's
# per-field work) would cost more than the rest of the run. The engine's own states are correct by
# construction, so they are assembled directly: the same instance dictionary pydantic would have built.

_STATE_FIELDS = tuple(WireState.model_fields)
_DETAIL_FIELDS = tuple(StateDetails.model_fields)
_DETAIL_DEFAULTS: dict[str, Any] | None = (
    None
    if any(field.default_factory is not None for field in StateDetails.model_fields.values())
    else dict(StateDetails().__dict__)
)
_new_object = object.__new__
_set = object.__setattr__


def assemble(cls: type[Any], values: dict[str, Any]) -> Any:
    """An instance of the pydantic model ``cls`` holding ``values`` as they are (no validation, no defaults)."""
    instance = _new_object(cls)
    _set(instance, "__dict__", values)
    _set(instance, "__pydantic_fields_set__", set(values))
    _set(instance, "__pydantic_extra__", None)
    if cls is State:
        _set(instance, "__pydantic_private__", {"_value": _UNSET})
    else:
        _set(instance, "__pydantic_private__", None)
    return instance


def new_details(**values: Any) -> StateDetails:
    """``StateDetails(**values)`` for values known to be valid, without validating them."""
    if _DETAIL_DEFAULTS is None:
        return StateDetails(**values)
    fields = dict(_DETAIL_DEFAULTS)
    fields.update(values)
    details: StateDetails = assemble(StateDetails, fields)
    return details


def _state(  # noqa: PLR0917 - private; every constructor passes all of them
    type_: StateType,
    name: str | None,
    message: str | None,
    data: Any,
    details: StateDetails | None,
    timestamp: datetime | None,
) -> State:
    if name and name != type_.default_name and NAMED_STATES.get(name, type_) is not type_:
        raise ValueError(f"state name {name!r} belongs to type {NAMED_STATES[name].value}")
    state: State = assemble(
        State,
        {
            "id": new_id(),
            "type": type_,
            "name": name or type_.default_name,
            "timestamp": timestamp or datetime.now(timezone.utc),
            "message": message,
            "state_details": details if details is not None else new_details(),
            "data": data,
        },
    )
    return state


def Scheduled(
    *,
    scheduled_time: datetime | None = None,
    name: str | None = None,
    message: str | None = None,
    data: Any = None,
    details: StateDetails | None = None,
) -> State:
    if details is None:
        details = new_details(scheduled_time=scheduled_time)
    elif scheduled_time is not None:
        details = details.model_copy(update={"scheduled_time": scheduled_time})
    return _state(StateType.SCHEDULED, name, message, data, details, None)


def Pending(*, message: str | None = None, name: str | None = None, details: StateDetails | None = None) -> State:
    return _state(StateType.PENDING, name, message, None, details, None)


def Running(*, message: str | None = None, name: str | None = None, details: StateDetails | None = None) -> State:
    return _state(StateType.RUNNING, name, message, None, details, None)


def Completed(
    *, message: str | None = None, data: Any = None, name: str | None = None, details: StateDetails | None = None
) -> State:
    return _state(StateType.COMPLETED, name, message, data, details, None)


def Failed(
    *, message: str | None = None, data: Any = None, name: str | None = None, details: StateDetails | None = None
) -> State:
    return _state(StateType.FAILED, name, message, data, details, None)


def Crashed(*, message: str | None = None, details: StateDetails | None = None) -> State:
    return _state(StateType.CRASHED, None, message, None, details, None)


def Cancelling(*, message: str | None = None, details: StateDetails | None = None) -> State:
    return _state(StateType.CANCELLING, None, message, None, details, None)


def Cancelled(*, message: str | None = None, details: StateDetails | None = None) -> State:
    return _state(StateType.CANCELLED, None, message, None, details, None)


def Paused(*, message: str | None = None, details: StateDetails | None = None) -> State:
    return _state(StateType.PAUSED, None, message, None, details, None)


def AwaitingRetry(*, scheduled_time: datetime | None = None, message: str | None = None, data: Any = None) -> State:
    return Scheduled(scheduled_time=scheduled_time, name="AwaitingRetry", message=message, data=data)


def Late(*, scheduled_time: datetime | None = None, message: str | None = None) -> State:
    return Scheduled(scheduled_time=scheduled_time, name="Late", message=message)


def Retrying(*, message: str | None = None, details: StateDetails | None = None) -> State:
    return _state(StateType.RUNNING, "Retrying", message, None, details, None)


def Cached(
    *,
    cache_key: str | None = None,
    cache_expiration: datetime | None = None,
    message: str | None = None,
    data: Any = None,
) -> State:
    details = new_details(cache_key=cache_key, cache_expiration=cache_expiration)
    return _state(StateType.COMPLETED, "Cached", message, data, details, None)


def TimedOut(*, message: str | None = None, data: Any = None) -> State:
    return _state(StateType.FAILED, "TimedOut", message, data, None, None)


def named_state_type(name: str) -> StateType | None:
    """The type a named state (``"Cached"``, ``"TimedOut"``, …) is a special case of, or ``None``."""
    return NAMED_STATES.get(name)


def any_failed(states: Iterable[WireState]) -> bool:
    """Whether any of ``states`` is Failed, Crashed or Cancelled."""
    return any(state.type in (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED) for state in states)


def run_id_of(state: WireState) -> UUID | None:
    """The task run or flow run a state belongs to, when its details say so."""
    return state.state_details.task_run_id or state.state_details.flow_run_id
