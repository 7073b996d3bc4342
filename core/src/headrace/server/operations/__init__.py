"""The service layer: plain async functions that take a :class:`~headrace.server.db.Database`.

Routers call them (and add only HTTP concerns: guards, status codes, cache invalidation); the CLI
calls them for commands that work on the database directly; the SDK's embedded mode calls them
in-process instead of over HTTP. They raise :class:`~headrace.server.problems.Problem` for what the
caller did wrong (unknown id, name taken), so that every path reports the same error the same way.
"""
