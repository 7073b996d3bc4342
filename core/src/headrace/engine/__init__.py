"""The run engine: one core for flow runs and task runs, driven by a synchronous or an asynchronous shell.

=====================  =================================================================================
module                 what
=====================  =================================================================================
``effects``            the effects a run yields and the two shells that perform them (the one core)
``flow_run``           the life of a flow run: created and orchestrated by the server
``task_run``           the life of a task run: orchestrated here, reported as records
``submission``         ``task.submit()`` and ``task.map()``: dependencies first, then the task runner
``reporting``          task-run records to the spool; state changes to the plugins' event hooks
``api``                settings at the edge and the one long-lived client per process
``timeouts``           timeouts for synchronous code
``ids``                run and state ids without a system call each
=====================  =================================================================================

Importing this package imports nothing else; the modules above load when first used.
"""
