"""Pure functions over a block document's ``data``: its secret leaves and its references to other documents.

A block schema names its secrets by dotted paths (``token``, ``credentials.password``); ``*`` matches
every key of a mapping (``headers.*`` for a ``SecretDict``). A *leaf* is one concrete match, as a tuple
of keys: ``("headers", "Authorization")``. On write the leaves are taken out of the data (replaced by
:data:`~headrace.schemas.blocks.OBFUSCATED`, so the stored public data keeps its shape and reads as
obfuscated without any decryption) and travel to the encrypted blob; on read they are put back only
when the caller asked for secrets.

A nested block is ``{"$ref": "<uuid>"}`` anywhere in the data (mappings and lists); its dotted path uses
list indexes as keys (``targets.0``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from headrace.schemas.blocks import OBFUSCATED, REFERENCE_KEY

__all__ = [
    "Leaf",
    "blob_payload",
    "dotted",
    "find_references",
    "from_blob_payload",
    "is_reference",
    "merge_secrets",
    "secret_leaves",
    "split_secrets",
]

Leaf = tuple[str, ...]


class DataError(ValueError):
    """The data does not fit the rules (a bad reference, an obfuscated secret with nothing stored)."""


def dotted(path: Leaf) -> str:
    return ".".join(path)


def is_reference(node: Any) -> bool:
    return isinstance(node, dict) and len(node) == 1 and REFERENCE_KEY in node


def secret_leaves(data: dict[str, Any], patterns: list[str]) -> list[tuple[Leaf, Any]]:
    """Every concrete secret leaf of ``data`` and its value, outermost first; ``None`` values are not secrets.

    When one pattern's leaf lies inside another's (``auth`` and ``auth.token``), the outer one wins.
    """
    found: dict[Leaf, Any] = {}
    for pattern in patterns:
        for path, value in _walk(data, tuple(pattern.split(".")), ()):
            if value is not None:
                found[path] = value
    leaves: list[tuple[Leaf, Any]] = []
    for path in sorted(found, key=len):
        if not any(path[: len(outer)] == outer for outer, _ in leaves):
            leaves.append((path, found[path]))
    return leaves


def _walk(node: Any, segments: Leaf, prefix: Leaf) -> Iterator[tuple[Leaf, Any]]:
    if not segments:
        yield prefix, node
        return
    if not isinstance(node, dict) or is_reference(node):
        return
    head, rest = segments[0], segments[1:]
    keys = list(node) if head == "*" else [head] if head in node else []
    for key in keys:
        yield from _walk(node[key], rest, (*prefix, key))


def _set(data: dict[str, Any], path: Leaf, value: Any) -> None:
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def split_secrets(
    data: dict[str, Any], patterns: list[str], stored: dict[Leaf, Any]
) -> tuple[dict[str, Any], dict[Leaf, Any]]:
    """``data`` with its secret leaves obfuscated, and the leaves' values.

    A leaf sent as the obfuscated marker keeps its ``stored`` value (an edit of a document read without
    its secrets); one with no stored value is a :class:`DataError`.
    """
    public = copy.deepcopy(data)
    secrets: dict[Leaf, Any] = {}
    for path, sent in secret_leaves(public, patterns):
        if sent == OBFUSCATED and path not in stored:
            raise DataError(
                f"the secret field {dotted(path)!r} was sent as {OBFUSCATED!r} but no value is stored for it: "
                "send the real value"
            )
        secrets[path] = stored[path] if sent == OBFUSCATED else sent
        _set(public, path, OBFUSCATED)
    return public, secrets


def merge_secrets(public: dict[str, Any], secrets: dict[Leaf, Any]) -> dict[str, Any]:
    """The public data with the secret leaves put back (leaves whose place no longer exists are dropped)."""
    data = copy.deepcopy(public)
    for path, value in secrets.items():
        node: Any = data
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            node[path[-1]] = value
    return data


def blob_payload(secrets: dict[Leaf, Any]) -> dict[str, Any]:
    """What gets encrypted: the leaves as ``[keys, value]`` pairs (keys may contain dots, so no dotted keys)."""
    return {"version": 1, "leaves": [[list(path), value] for path, value in secrets.items()]}


def from_blob_payload(payload: Any) -> dict[Leaf, Any]:
    if not isinstance(payload, dict) or payload.get("version") != 1:
        raise DataError("the decrypted block secrets are not in a format this headrace knows")
    return {tuple(str(key) for key in path): value for path, value in payload["leaves"]}


def find_references(data: Any) -> dict[str, UUID]:
    """The documents ``data`` refers to, by dotted path; a malformed reference is a :class:`DataError`."""
    found: dict[str, UUID] = {}
    stack: list[tuple[Leaf, Any]] = [((), data)]
    while stack:
        path, node = stack.pop()
        if is_reference(node):
            target = node[REFERENCE_KEY]
            try:
                found[dotted(path)] = UUID(str(target))
            except ValueError:
                raise DataError(
                    f"the reference at {dotted(path) or 'the top level'!r} is not a block document id: {target!r}"
                ) from None
        elif isinstance(node, dict):
            stack.extend(((*path, str(key)), value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend(((*path, str(index)), value) for index, value in enumerate(node))
    if "" in found:
        raise DataError("a block document's data cannot itself be a reference")
    return found
