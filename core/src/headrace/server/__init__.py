"""The headrace server: REST API, services and the database layer (``headrace.server.db``).

Only the server and the CLI import this package; the SDK never does (see ``docs/architecture.md``).
"""
