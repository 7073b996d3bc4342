"""Contract suites: plain pytest classes that an implementation's tests subclass, providing one fixture.

::

    # tests/test_my_runner.py in a plugin distribution
    import pytest
    from headrace.testing.contracts import TaskRunnerContract
    from my_plugin.runner import MyTaskRunner

    class TestMyTaskRunner(TaskRunnerContract):
        @pytest.fixture
        def task_runner(self):
            return MyTaskRunner(workers=2)

=========================  ===================================  =====================================
suite                      the fixture to provide               what it checks
=========================  ===================================  =====================================
:class:`TaskRunnerContract`  ``task_runner``: a new, unstarted   submit/futures/errors/shutdown, and
                           runner                               flows using it end to end
:class:`StorageContract`   ``storage_url``: a fresh location    reads/writes/keys, result records,
                           (URL) served by the backend          persisted and cached task results
:class:`NotifierContract`  ``notifier``, ``delivered``,         delivery (sync, async), failures as
                           ``failing_notifier``,                NotificationError, no secret in
                           ``unreachable_notifier``             messages, logs or reprs, round trips
=========================  ===================================  =====================================

Capability flags (class attributes) say what an implementation does *not* do; the suite then checks that
the limitation is real instead of skipping tests silently. Flow-level tests run with a temporary
``HEADRACE_HOME`` and the embedded default; override the class-scoped ``headrace_home`` fixture (a
``@classmethod`` returning, for instance, a session-scoped folder) to share one database between classes,
since creating one takes a few seconds.
The built-in thread pool, process pool, ``file`` and ``memory`` backends, and the built-in notifiers
(Apprise, webhook) pass these same suites.
"""

from __future__ import annotations

from headrace.testing.contracts.environment import HeadraceEnvironment, read_task_runs
from headrace.testing.contracts.notifier import Delivery, NotifierContract
from headrace.testing.contracts.storage import StorageContract
from headrace.testing.contracts.task_runner import TaskRunnerContract

__all__ = [
    "Delivery",
    "HeadraceEnvironment",
    "NotifierContract",
    "StorageContract",
    "TaskRunnerContract",
    "read_task_runs",
]
