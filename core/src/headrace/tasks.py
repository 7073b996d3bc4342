"""``@task``: a function whose every call is a recorded, retried, optionally cached task run.

::

    from headrace import flow, task
    from headrace.retries import exponential_backoff

    @task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2), retry_jitter_factor=0.5)
    def fetch(url: str) -> bytes: ...

    @flow
    def crawl(urls: list[str]):
        pages = fetch.map(urls)             # concurrently, on the flow's task runner
        return [len(page) for page in pages.result()]

Calling a task runs it at once and returns its value (or raises). ``.submit()`` returns a
:class:`~headrace.futures.HeadraceFuture`; ``.map()`` submits one run per element. An ``async def`` task
returns an awaitable (to ``await``, or to ``asyncio.run`` outside any flow), except inside a running
synchronous flow or task, where it runs to completion and returns its value. Runs are orchestrated in this
process (see :mod:`headrace.engine.task_run`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from functools import cached_property, update_wrapper
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from headrace.retries import RetryDelay, RetryPolicy

if TYPE_CHECKING:
    from headrace.cache_policies import CachePolicy
    from headrace.context import TaskRunContext, TaskRunInfo
    from headrace.futures import HeadraceFuture, HeadraceFutureList
    from headrace.results.serializers import Serializer
    from headrace.results.storage import StorageBlock
    from headrace.states import State

__all__ = ["Task", "task", "task_input_hash", "unmapped"]

P = ParamSpec("P")
R = TypeVar("R")

StateHook = Callable[["Task[..., Any]", "TaskRunInfo", "State"], Any]
RetryCondition = Callable[["Task[..., Any]", "TaskRunInfo", "State"], bool]
CacheKeyFn = Callable[["TaskRunContext", dict[str, Any]], "str | None"]


class unmapped(Generic[R]):
    """Pass the same value to every run of ``task.map()``: ``add.map([1, 2, 3], unmapped(10))``."""

    __slots__ = ("value",)

    def __init__(self, value: R) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"unmapped({self.value!r})"


def task_input_hash(context: TaskRunContext, arguments: dict[str, Any]) -> str | None:
    """A ``cache_key_fn`` that keys the cache on the task and its arguments (Prefect's classic helper)::

        @task(cache_key_fn=task_input_hash, cache_expiration=timedelta(hours=1))
        def fetch(url: str) -> bytes: ...

    The same as ``cache_policy=INPUTS`` plus the task's identity (see :mod:`headrace.cache_policies`).
    """
    from headrace.cache_policies import hash_objects

    return hash_objects(context.task.task_key, sorted(arguments), [arguments[name] for name in sorted(arguments)])


def _task_key(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"[:400]


class Task(Generic[P, R]):
    """A task: a function plus how its runs are named, retried, cached, persisted and timed out."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        task_run_name: str | Callable[[], str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: RetryDelay | None = None,
        retry_jitter_factor: float | None = None,
        retry_condition_fn: RetryCondition | None = None,
        timeout_seconds: float | None = None,
        cache_policy: CachePolicy | None = None,
        cache_key_fn: CacheKeyFn | None = None,
        cache_expiration: timedelta | None = None,
        refresh_cache: bool | None = None,
        persist_result: bool | None = None,
        result_storage: str | StorageBlock | None = None,
        result_serializer: str | Serializer | None = None,
        result_storage_key: str | None = None,
        log_prints: bool | None = None,
        on_completion: Sequence[StateHook] | None = None,
        on_failure: Sequence[StateHook] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"@task needs a function, got {type(fn).__name__}")
        update_wrapper(self, fn)
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", type(fn).__name__))
        self.description = description if description is not None else inspect.getdoc(fn)
        self.tags = list(dict.fromkeys(tags or ()))
        self.version = version
        self.task_run_name = task_run_name
        self.retries = retries or 0
        self.retry_delay_seconds: RetryDelay = retry_delay_seconds if retry_delay_seconds is not None else 0.0
        self.retry_jitter_factor = retry_jitter_factor
        self.retry_condition_fn = retry_condition_fn
        if timeout_seconds is not None and timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        self.timeout_seconds = timeout_seconds
        if cache_policy is not None and cache_key_fn is not None:
            from headrace.cache_policies import CacheKeyFnPolicy

            cache_policy = cache_policy + CacheKeyFnPolicy(cache_key_fn)
        elif cache_key_fn is not None:
            from headrace.cache_policies import CacheKeyFnPolicy

            cache_policy = CacheKeyFnPolicy(cache_key_fn)
        self.cache_policy = cache_policy
        self.cache_key_fn = cache_key_fn
        from headrace.cache_policies import NoCache

        self._caches = cache_policy is not None and not isinstance(cache_policy, NoCache)
        self.cache_expiration = cache_expiration
        self.refresh_cache = refresh_cache
        if persist_result is False and self.caches:
            raise ValueError(
                f"task {self.name!r} has a cache policy but persist_result=False: a cache is a persisted result; "
                "drop one of the two"
            )
        self.persist_result = persist_result
        if result_storage is not None and not isinstance(result_storage, str):
            from headrace.results.storage import check_storage_target

            check_storage_target(result_storage, f"task {self.name!r}")
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.result_storage_key = result_storage_key
        self.log_prints = log_prints
        self.on_completion_hooks = list(on_completion or ())
        self.on_failure_hooks = list(on_failure or ())
        self.isasync = inspect.iscoroutinefunction(fn)
        self.task_key = _task_key(fn)
        # The wire form of the retry settings, with a callable delay materialized (headrace.retries).
        self.retry_policy = RetryPolicy.build(self.retries, self.retry_delay_seconds, retry_jitter_factor)

    # -- derived ----------------------------------------------------------------------------------

    @property
    def caches(self) -> bool:
        """Whether runs of this task look up and store results by cache key."""
        return self._caches

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name, defaults applied; ``TypeError`` for a call that does not fit."""
        simple = self._simple_parameters
        if simple is not None and len(args) <= len(simple):
            arguments = dict(zip(simple, args, strict=False))
            if kwargs:
                for name, value in kwargs.items():
                    if name not in simple or name in arguments:
                        break
                    arguments[name] = value
                else:
                    kwargs = {}
            if not kwargs:
                if len(arguments) == len(simple):
                    return arguments
                defaults = self._defaults
                for name in simple:
                    if name not in arguments:
                        if name not in defaults:
                            break
                        arguments[name] = defaults[name]
                else:
                    return {name: arguments[name] for name in simple}
        try:  # the general case, and the precise error message
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"task {self.name!r}: {exc}") from None
        bound.apply_defaults()
        return dict(bound.arguments)

    @cached_property
    def _simple_parameters(self) -> tuple[str, ...] | None:
        """The parameter names when every one is positional-or-keyword (then binding is a zip)."""
        parameters = self.signature.parameters.values()
        if all(parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for parameter in parameters):
            return tuple(parameter.name for parameter in parameters)
        return None

    @cached_property
    def positional_only_call(self) -> bool:
        """Whether bound arguments can be passed positionally, in order (every parameter is positional-or-keyword)."""
        return self._simple_parameters is not None

    @cached_property
    def _defaults(self) -> dict[str, Any]:
        return {
            name: parameter.default
            for name, parameter in self.signature.parameters.items()
            if parameter.default is not inspect.Parameter.empty
        }

    @cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fn)

    @cached_property
    def source_hash(self) -> str:
        from headrace.cache_policies import source_hash

        return source_hash(self.fn)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for cached in ("signature", "_simple_parameters", "_defaults", "positional_only_call"):
            state.pop(cached, None)  # rebuilt on demand in a worker process
        return state

    # -- calling ----------------------------------------------------------------------------------

    @overload
    def __call__(self: Task[P, R], *args: P.args, **kwargs: P.kwargs) -> R: ...

    @overload
    def __call__(self: Task[P, R], *args: Any, return_state: bool, **kwargs: Any) -> Any: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task now; return its value (a coroutine for an async task in a running loop).

        ``return_state=True`` returns the final :class:`~headrace.states.State` instead of raising on failure.
        """
        from headrace.engine.task_run import call_task

        return_state = bool(kwargs.pop("return_state", False))
        wait_for = kwargs.pop("wait_for", None)
        return call_task(self, args, kwargs, return_state=return_state, wait_for=wait_for)

    def submit(self, *args: Any, wait_for: Iterable[Any] | None = None, **kwargs: Any) -> HeadraceFuture[R]:
        """Run the task on the flow's task runner; return a future at once.

        Futures among the arguments (also inside lists, tuples, sets and dicts) and in ``wait_for`` are
        dependencies: the run starts once they have completed, with their results in place of the futures.
        """
        from headrace.engine.submission import submit_task

        return submit_task(self, args, kwargs, wait_for=wait_for)

    def map(self, *args: Any, wait_for: Iterable[Any] | None = None, **kwargs: Any) -> HeadraceFutureList[R]:
        """Submit one run per element of the iterable arguments; other arguments (and ``unmapped(x)``) are
        passed to every run. All iterables must have the same length. Returns the futures, in order."""
        from headrace.engine.submission import map_task

        return map_task(self, args, kwargs, wait_for=wait_for)

    def with_options(self, **changes: Any) -> Task[P, R]:
        """A copy of this task with some options changed: ``fetch.with_options(retries=5)``."""
        options = self._options()
        unknown = set(changes) - set(options)
        if unknown:
            raise TypeError(f"unknown task option(s): {', '.join(sorted(unknown))}")
        options.update(changes)
        return Task(self.fn, **options)

    def _options(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "tags": self.tags,
            "version": self.version,
            "task_run_name": self.task_run_name,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "retry_jitter_factor": self.retry_jitter_factor,
            "retry_condition_fn": self.retry_condition_fn,
            "timeout_seconds": self.timeout_seconds,
            "cache_policy": None if self.cache_key_fn is not None else self.cache_policy,
            "cache_key_fn": self.cache_key_fn,
            "cache_expiration": self.cache_expiration,
            "refresh_cache": self.refresh_cache,
            "persist_result": self.persist_result,
            "result_storage": self.result_storage,
            "result_serializer": self.result_serializer,
            "result_storage_key": self.result_storage_key,
            "log_prints": self.log_prints,
            "on_completion": self.on_completion_hooks,
            "on_failure": self.on_failure_hooks,
        }

    def on_completion(self, fn: StateHook) -> StateHook:
        """Decorator form: add a hook called with ``(task, task_run, state)`` when a run completes."""
        self.on_completion_hooks.append(fn)
        return fn

    def on_failure(self, fn: StateHook) -> StateHook:
        """Decorator form: add a hook called with ``(task, task_run, state)`` when a run fails for good."""
        self.on_failure_hooks.append(fn)
        return fn

    def __repr__(self) -> str:
        return f"Task({self.name!r})"


@overload
def task(__fn: Callable[P, R]) -> Task[P, R]: ...


@overload
def task(
    *,
    name: str | None = None,
    description: str | None = None,
    tags: Iterable[str] | None = None,
    version: str | None = None,
    task_run_name: str | Callable[[], str] | None = None,
    retries: int | None = None,
    retry_delay_seconds: RetryDelay | None = None,
    retry_jitter_factor: float | None = None,
    retry_condition_fn: RetryCondition | None = None,
    timeout_seconds: float | None = None,
    cache_policy: CachePolicy | None = None,
    cache_key_fn: CacheKeyFn | None = None,
    cache_expiration: timedelta | None = None,
    refresh_cache: bool | None = None,
    persist_result: bool | None = None,
    result_storage: str | StorageBlock | None = None,
    result_serializer: str | Serializer | None = None,
    result_storage_key: str | None = None,
    log_prints: bool | None = None,
    on_completion: Sequence[StateHook] | None = None,
    on_failure: Sequence[StateHook] | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(__fn: Callable[P, R] | None = None, **options: Any) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Make a function a task: ``@task`` or ``@task(retries=2, ...)``. See :class:`Task` for the options."""
    if __fn is not None:
        return Task(__fn, **options)

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        return Task(fn, **options)

    return decorate
