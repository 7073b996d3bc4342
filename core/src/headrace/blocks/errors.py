"""What can go wrong when saving, loading or deleting a block, each error saying what to do about it.

Every error is a :class:`BlockError`, itself a :class:`~headrace.exceptions.HeadraceError`, so code that
loads configuration can catch one class. The messages are single lines meant for people.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headrace.exceptions import HeadraceError

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "BlockAlreadyExists",
    "BlockError",
    "BlockInvalid",
    "BlockNotFound",
    "BlockSecretsForbidden",
    "BlockTypeMismatch",
    "UnknownBlockType",
    "field_problems",
]


def field_problems(exc: ValidationError) -> list[str]:
    """One ``"field.path: what is wrong"`` line per problem of a validation error, never showing the input.

    The input may hold a secret (a password of the wrong type, say), so only where and what are told.
    """
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(part) for part in error["loc"]) or "(the whole block)"
        problems.append(f"{where}: {error['msg']}")
    return problems


class BlockError(HeadraceError):
    """Base of every block error."""


class BlockNotFound(BlockError, LookupError):
    """No saved block of this type has this name."""

    def __init__(self, slug: str, name: str) -> None:
        super().__init__(
            f"there is no block {name!r} of type {slug!r}; `headrace block ls --type {slug}` lists the saved ones"
        )
        self.slug = slug
        self.name = name


class BlockTypeMismatch(BlockError, TypeError):
    """The block exists, but as another block type than the class asked for."""

    def __init__(self, name: str, expected: str, found: str, hint: str = "") -> None:
        message = f"block {name!r} is of type {found!r}, not {expected!r}"
        super().__init__(message + (f"; {hint}" if hint else ""))
        self.name = name
        self.expected = expected
        self.found = found


class BlockAlreadyExists(BlockError):
    """Saving under a name that is taken, without ``overwrite=True``."""

    def __init__(self, slug: str, name: str) -> None:
        super().__init__(
            f"a block {name!r} of type {slug!r} already exists; pass overwrite=True to replace its contents"
        )
        self.slug = slug
        self.name = name


class BlockInvalid(BlockError, ValueError):
    """A saved document no longer validates against the current block class (the class changed since)."""


class BlockSecretsForbidden(BlockError, PermissionError):
    """Loading a block with secret fields needs an API key with write scope; this one has less."""


class UnknownBlockType(BlockError, LookupError):
    """No installed plugin contributes a block type with this slug."""
