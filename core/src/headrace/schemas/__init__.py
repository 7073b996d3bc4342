"""Pydantic models that travel over the wire, shared by the client and the server.

A leaf package: it imports nothing from headrace but settings, so both sides can use it cheaply.
"""
