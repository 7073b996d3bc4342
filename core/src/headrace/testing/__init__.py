"""Helpers for testing headrace plugins and flows; public API that plugin test suites may use."""
