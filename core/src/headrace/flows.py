"""``@flow``: a function whose every call is a flow run, recorded and orchestrated by the API.

::

    from headrace import flow, task, get_run_logger

    @task(retries=2, retry_delay_seconds=[1, 10])
    def extract(day: str) -> list[int]: ...

    @flow(name="nightly-etl", flow_run_name="etl-{day}", log_prints=True)
    def etl(day: str = "2030-01-01") -> int:
        rows = extract(day)
        get_run_logger().info("extracted %d rows", len(rows))
        return len(rows)

    etl("2030-01-02")

Parameters are validated and coerced from the function's type hints (``etl(day=3)`` fails with a message
saying which parameter and why). A flow called inside another flow (or task) is a *subflow*: its own flow
run, linked to the parent through a task run in the parent. An ``async def`` flow returns a coroutine when
called outside any run, to ``await`` or ``asyncio.run``; inside a running synchronous flow it runs to
completion like any other call.
"""

from __future__ import annotations

import inspect
import random
import typing
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property, update_wrapper
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from headrace.exceptions import ParameterValidationError
from headrace.retries import RetryDelay, RetryPolicy

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from headrace.context import FlowRunInfo
    from headrace.results.serializers import Serializer
    from headrace.results.storage import StorageBlock
    from headrace.states import State
    from headrace.task_runners import TaskRunner

__all__ = ["Flow", "flow"]

P = ParamSpec("P")
R = TypeVar("R")

FlowStateHook = Callable[["Flow[..., Any]", "FlowRunInfo", "State"], Any]

_ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "crimson", "daring", "eager", "gentle", "golden", "hardy",
    "humble", "jolly", "keen", "lively", "lucky", "merry", "mellow", "nimble", "patient", "proud", "quiet",
    "rapid", "silver", "steady", "sturdy", "swift", "tidy", "vivid", "witty",
)  # fmt: skip
_ANIMALS = (
    "badger", "beaver", "bison", "crane", "dingo", "eagle", "falcon", "ferret", "gecko", "heron", "ibex",
    "jackal", "koala", "lemur", "lynx", "marten", "narwhal", "ocelot", "otter", "panda", "puffin", "quail",
    "raven", "salmon", "stoat", "tapir", "turtle", "walrus", "wombat", "yak",
)  # fmt: skip


def generate_run_name() -> str:
    """``"swift-otter"``: how flow runs are named when the flow does not say."""
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}"


class Flow(Generic[P, R]):
    """A flow: a function plus how its runs are named, validated, retried, timed out and where tasks run."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        tags: Iterable[str] | None = None,
        flow_run_name: str | Callable[[], str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: RetryDelay | None = None,
        retry_jitter_factor: float | None = None,
        timeout_seconds: float | None = None,
        task_runner: TaskRunner | str | type[TaskRunner] | None = None,
        validate_parameters: bool = True,
        persist_result: bool | None = None,
        result_storage: str | StorageBlock | None = None,
        result_serializer: str | Serializer | None = None,
        log_prints: bool | None = None,
        on_completion: Sequence[FlowStateHook] | None = None,
        on_failure: Sequence[FlowStateHook] | None = None,
        on_crashed: Sequence[FlowStateHook] | None = None,
        on_cancellation: Sequence[FlowStateHook] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@flow needs a function, got {type(fn).__name__}")
        update_wrapper(self, fn)
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", type(fn).__name__)).replace("_", "-")
        self.description = description if description is not None else inspect.getdoc(fn)
        self.version = version
        self.tags = list(dict.fromkeys(tags or ()))
        self.flow_run_name = flow_run_name
        self.retries = retries or 0
        self.retry_delay_seconds: RetryDelay = retry_delay_seconds if retry_delay_seconds is not None else 0.0
        self.retry_jitter_factor = retry_jitter_factor
        # What the server's RetryFailedRuns rule applies (headrace.retries), a callable delay materialized.
        self.retry_policy = RetryPolicy.build(self.retries, self.retry_delay_seconds, retry_jitter_factor)
        if timeout_seconds is not None and timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        self.timeout_seconds = timeout_seconds
        if task_runner is not None and not isinstance(task_runner, (str, type)):
            from headrace.task_runners import TaskRunner

            if not isinstance(task_runner, TaskRunner):
                raise TypeError(f"task_runner must be a TaskRunner, a TaskRunner class or a name; got {task_runner!r}")
        self.task_runner = task_runner
        self.should_validate_parameters = validate_parameters
        self.persist_result = persist_result
        if result_storage is not None and not isinstance(result_storage, str):
            from headrace.results.storage import check_storage_target

            check_storage_target(result_storage, f"flow {self.name!r}")
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.log_prints = log_prints
        self.on_completion_hooks = list(on_completion or ())
        self.on_failure_hooks = list(on_failure or ())
        self.on_crashed_hooks = list(on_crashed or ())
        self.on_cancellation_hooks = list(on_cancellation or ())
        self.isasync = inspect.iscoroutinefunction(fn)

    # -- parameters -------------------------------------------------------------------------------

    @cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fn)

    @cached_property
    def _adapters(self) -> dict[str, TypeAdapter[Any]]:
        from pydantic import ConfigDict, TypeAdapter

        try:
            hints = typing.get_type_hints(self.fn, include_extras=True)
        except Exception:  # a hint naming something undefined: validate what can be resolved
            hints = {}
            for name, parameter in self.signature.parameters.items():
                if not isinstance(parameter.annotation, str) and parameter.annotation is not inspect.Parameter.empty:
                    hints[name] = parameter.annotation
        adapters: dict[str, TypeAdapter[Any]] = {}
        for name, parameter in self.signature.parameters.items():
            hint = hints.get(name, Any)
            if hint is Any or parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                continue
            try:
                adapters[name] = TypeAdapter(hint, config=ConfigDict(arbitrary_types_allowed=True))
            except Exception:  # pydantic cannot validate this type (or it carries its own config)
                try:
                    adapters[name] = TypeAdapter(hint)
                except Exception:
                    continue
        return adapters

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name, defaults applied (a clear error for a wrong call)."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ParameterValidationError(self.name, [str(exc)]) from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def validate_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """``parameters`` coerced to the type hints; :class:`ParameterValidationError` listing every bad one."""
        if not self.should_validate_parameters:
            return parameters
        from pydantic import ValidationError

        validated = dict(parameters)
        errors: list[str] = []
        for name, adapter in self._adapters.items():
            if name not in parameters:
                continue
            parameter = self.signature.parameters[name]
            if parameter.default is not inspect.Parameter.empty and parameters[name] is parameter.default:
                continue  # defaults are the author's, not the caller's: not validated, as in pydantic
            try:
                validated[name] = adapter.validate_python(parameters[name])
            except ValidationError as exc:
                for error in exc.errors():
                    where = ".".join(str(part) for part in (name, *error["loc"]))
                    errors.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
        if errors:
            raise ParameterValidationError(self.name, errors)
        return validated

    # -- calling ----------------------------------------------------------------------------------

    @overload
    def __call__(self: Flow[P, R], *args: P.args, **kwargs: P.kwargs) -> R: ...

    @overload
    def __call__(self: Flow[P, R], *args: Any, return_state: bool, **kwargs: Any) -> Any: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the flow; return its value, or raise what failed it.

        ``return_state=True`` returns the final :class:`~headrace.states.State` instead.
        """
        from headrace.engine.flow_run import call_flow

        return_state = bool(kwargs.pop("return_state", False))
        return call_flow(self, args, kwargs, return_state=return_state)

    def with_options(self, **changes: Any) -> Flow[P, R]:
        """A copy of this flow with some options changed: ``etl.with_options(retries=3)``."""
        options = self._options()
        unknown = set(changes) - set(options)
        if unknown:
            raise TypeError(f"unknown flow option(s): {', '.join(sorted(unknown))}")
        options.update(changes)
        return Flow(self.fn, **options)

    def _options(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "tags": self.tags,
            "flow_run_name": self.flow_run_name,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "retry_jitter_factor": self.retry_jitter_factor,
            "timeout_seconds": self.timeout_seconds,
            "task_runner": self.task_runner,
            "validate_parameters": self.should_validate_parameters,
            "persist_result": self.persist_result,
            "result_storage": self.result_storage,
            "result_serializer": self.result_serializer,
            "log_prints": self.log_prints,
            "on_completion": self.on_completion_hooks,
            "on_failure": self.on_failure_hooks,
            "on_crashed": self.on_crashed_hooks,
            "on_cancellation": self.on_cancellation_hooks,
        }

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("signature", None)
        state.pop("_adapters", None)
        return state

    def __repr__(self) -> str:
        return f"Flow({self.name!r})"


@overload
def flow(__fn: Callable[P, R]) -> Flow[P, R]: ...


@overload
def flow(
    *,
    name: str | None = None,
    description: str | None = None,
    version: str | None = None,
    tags: Iterable[str] | None = None,
    flow_run_name: str | Callable[[], str] | None = None,
    retries: int | None = None,
    retry_delay_seconds: RetryDelay | None = None,
    retry_jitter_factor: float | None = None,
    timeout_seconds: float | None = None,
    task_runner: TaskRunner | str | type[TaskRunner] | None = None,
    validate_parameters: bool = True,
    persist_result: bool | None = None,
    result_storage: str | StorageBlock | None = None,
    result_serializer: str | Serializer | None = None,
    log_prints: bool | None = None,
    on_completion: Sequence[FlowStateHook] | None = None,
    on_failure: Sequence[FlowStateHook] | None = None,
    on_crashed: Sequence[FlowStateHook] | None = None,
    on_cancellation: Sequence[FlowStateHook] | None = None,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(__fn: Callable[P, R] | None = None, **options: Any) -> Flow[P, R] | Callable[[Callable[P, R]], Flow[P, R]]:
    """Make a function a flow: ``@flow`` or ``@flow(name=..., retries=..., ...)``. See :class:`Flow`."""
    if __fn is not None:
        return Flow(__fn, **options)

    def decorate(fn: Callable[P, R]) -> Flow[P, R]:
        return Flow(fn, **options)

    return decorate
