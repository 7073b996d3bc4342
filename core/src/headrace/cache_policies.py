"""Cache policies: what makes two task runs "the same", so that the second reuses the first one's result.

A policy computes a *cache key* from a task run; runs with the same key share one persisted result. Combine
policies with ``+`` (every part goes into the key) and drop inputs with ``-``::

    from datetime import timedelta
    from headrace import task
    from headrace.cache_policies import INPUTS, TASK_SOURCE

    @task(cache_policy=INPUTS + TASK_SOURCE, cache_expiration=timedelta(hours=1))
    def fetch(url: str, verbose: bool = False) -> bytes: ...

    @task(cache_policy=INPUTS - "verbose")       # the same result whatever ``verbose`` says
    def fetch_quietly(url: str, verbose: bool = False) -> bytes: ...

``cache_key_fn=lambda context, parameters: ...`` on a task is :class:`CacheKeyFnPolicy` and combines the
same way. A key of ``None`` means "do not cache this run".

=====================  ==================================================================================
policy                 the key covers
=====================  ==================================================================================
``INPUTS``             the task's arguments (JSON when possible, else cloudpickle)
``TASK_SOURCE``        the source code of the task's function (a changed function misses the cache)
``FLOW_PARAMETERS``    the parameters of the flow run the task runs in
``RUN_ID``             the flow run's id: a cache that lives for one flow run (retries reuse results)
``DEFAULT``            ``INPUTS + TASK_SOURCE + RUN_ID``
``NO_CACHE``           nothing: never cache (the default when a task sets no policy)
=====================  ==================================================================================
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headrace.context import TaskRunContext

__all__ = [
    "DEFAULT",
    "FLOW_PARAMETERS",
    "INPUTS",
    "NONE",
    "NO_CACHE",
    "RUN_ID",
    "TASK_SOURCE",
    "CacheKeyFnPolicy",
    "CachePolicy",
    "CompoundCachePolicy",
    "FlowParameters",
    "Inputs",
    "NoCache",
    "RunId",
    "TaskSource",
    "hash_objects",
]


def hash_objects(*objects: Any) -> str:
    """A stable hex digest of ``objects``: their JSON form when they have one, else their cloudpickle bytes.

    Secrets count by a digest of their value (see :func:`_secrets_as_digests`), never as the masked text
    pydantic prints for them.
    """
    return _digest(_secrets_as_digests(objects))


def _digest(value: Any) -> str:
    from pydantic_core import PydanticSerializationError, to_json

    try:
        data = bytes(to_json(value))
    except (PydanticSerializationError, TypeError, ValueError):
        import cloudpickle

        data = bytes(cloudpickle.dumps(value))
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _secrets_as_digests(value: Any) -> Any:
    """``value`` with every secret (anything with ``get_secret_value()``) replaced by a digest of its value.

    Why: pydantic serializes ``SecretStr`` (and blocks' secret fields) as ``**********``, so two credentials
    blocks differing only in their password would hash alike and share a cache entry. The digest tells
    them apart without putting the secret itself into a key. Pydantic models are walked field by field for
    the same reason.
    """
    from pydantic import BaseModel

    reveal = getattr(value, "get_secret_value", None)
    if callable(reveal):
        return {"$secret": _digest(_secrets_as_digests(reveal()))}
    if isinstance(value, BaseModel):
        fields = {name: _secrets_as_digests(field) for name, field in value}
        return {"$model": f"{type(value).__module__}.{type(value).__qualname__}", "fields": fields}
    if isinstance(value, dict):
        return {key: _secrets_as_digests(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_secrets_as_digests(item) for item in value)
    return value


class CachePolicy:
    """Base of every policy: ``compute_key`` returns the key, or ``None`` for "do not cache"."""

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        raise NotImplementedError

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        return CompoundCachePolicy(policies=(*_parts(self), *_parts(other)))

    def __sub__(self, name: str) -> CachePolicy:
        raise TypeError(f"only INPUTS (or a combination holding it) can leave out inputs, not {self!r}")


def _parts(policy: CachePolicy) -> tuple[CachePolicy, ...]:
    return policy.policies if isinstance(policy, CompoundCachePolicy) else (policy,)


@dataclass(frozen=True)
class CompoundCachePolicy(CachePolicy):
    """Several policies together: the key covers every part's key. ``None`` only if every part says so."""

    policies: tuple[CachePolicy, ...] = ()

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        keys = [policy.compute_key(task_ctx, inputs, flow_parameters) for policy in self.policies]
        present = [key for key in keys if key is not None]
        if not present:
            return None
        return hash_objects(*present)

    def __sub__(self, name: str) -> CachePolicy:
        if not any(isinstance(policy, Inputs) for policy in self.policies):
            raise TypeError("this policy does not include INPUTS, so there are no inputs to leave out")
        return CompoundCachePolicy(
            policies=tuple(policy - name if isinstance(policy, Inputs) else policy for policy in self.policies)
        )


@dataclass(frozen=True)
class NoCache(CachePolicy):
    """Never cache."""

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        return None


@dataclass(frozen=True)
class Inputs(CachePolicy):
    """The task's arguments, except those named in ``exclude``."""

    exclude: tuple[str, ...] = field(default=())

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        kept = {name: value for name, value in inputs.items() if name not in self.exclude}
        return hash_objects(sorted(kept), [kept[name] for name in sorted(kept)])

    def __sub__(self, name: str) -> CachePolicy:
        if not isinstance(name, str):
            return NotImplemented
        return Inputs(exclude=(*self.exclude, name))


@dataclass(frozen=True)
class TaskSource(CachePolicy):
    """The source code of the task's function (its bytecode when the source cannot be read)."""

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        return task_ctx.task.source_hash


@dataclass(frozen=True)
class FlowParameters(CachePolicy):
    """The parameters of the flow run the task runs in."""

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        return hash_objects(sorted(flow_parameters), [flow_parameters[name] for name in sorted(flow_parameters)])


@dataclass(frozen=True)
class RunId(CachePolicy):
    """The id of the flow run (of the task run, outside a flow): results are shared within one run."""

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        run_id = task_ctx.task_run.flow_run_id or task_ctx.task_run.id
        return run_id.hex


@dataclass(frozen=True)
class CacheKeyFnPolicy(CachePolicy):
    """A function ``(context, parameters) -> str | None`` decides the key (``@task(cache_key_fn=...)``)."""

    cache_key_fn: Callable[[TaskRunContext, dict[str, Any]], str | None]

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        key = self.cache_key_fn(task_ctx, inputs)
        return None if key is None else str(key)


def source_hash(fn: Callable[..., Any]) -> str:
    """A digest of ``fn``'s source code, or of its bytecode and constants when the source is unavailable."""
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        if code is None:
            return hash_objects(getattr(fn, "__qualname__", repr(fn)))
        return hashlib.blake2b(code.co_code + repr(_constants(code.co_consts)).encode(), digest_size=16).hexdigest()
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _constants(consts: Iterable[Any]) -> list[Any]:
    return [c.co_code if inspect.iscode(c) else c for c in consts]


INPUTS = Inputs()
TASK_SOURCE = TaskSource()
FLOW_PARAMETERS = FlowParameters()
RUN_ID = RunId()
NO_CACHE = NoCache()
NONE = NO_CACHE
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID
