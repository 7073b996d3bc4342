"""headrace-dask hook implementations: the ``dask`` task runner.

The registration is a lazy ``"module:attribute"`` reference: listing plugins imports this module and nothing
heavier; ``dask`` and ``distributed`` are imported only when a flow starts a ``DaskTaskRunner``.
"""

from __future__ import annotations

from collections.abc import Iterable

from headrace.plugins import hookimpl
from headrace.plugins.types import TaskRunner


@hookimpl
def headrace_task_runners() -> Iterable[TaskRunner]:
    return [
        TaskRunner(
            name="dask",
            implementation="headrace_dask.task_runner:DaskTaskRunner",
            description="Runs submitted tasks on a Dask cluster: a LocalCluster it starts, or a running scheduler.",
        )
    ]
