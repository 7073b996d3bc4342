"""Dask for headrace: ``DaskTaskRunner`` runs a flow's submitted tasks on a Dask cluster.

``from headrace_dask import DaskTaskRunner`` imports the runner on first access only, so that listing
plugins (which imports this package) stays light; Dask itself is imported when a runner starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headrace_dask.__about__ import __version__

if TYPE_CHECKING:
    from headrace_dask.task_runner import DaskTaskRunner, InProcessDaskTaskRunner

__all__ = ["DaskTaskRunner", "InProcessDaskTaskRunner", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("DaskTaskRunner", "InProcessDaskTaskRunner"):
        from headrace_dask import task_runner

        return getattr(task_runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
