"""The settings error: cheap to import, so that callers can catch it without loading pydantic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SettingProblem:
    """One setting whose value cannot be used: the variable, its shown value, its source, and why."""

    name: str
    value: str
    origin: str
    message: str

    def __str__(self) -> str:
        return f"invalid setting {self.name}={self.value} (from {self.origin}): {self.message}"


class SettingsError(ValueError):
    """One or more settings have values that cannot be used; the message says which and why.

    The message has one line per problem, each naming the variable, where its value came from, and
    what was expected. :attr:`problems` holds the same facts for programs.
    """

    def __init__(self, message: str, problems: Sequence[SettingProblem] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)

    @classmethod
    def from_problems(cls, problems: Sequence[SettingProblem]) -> SettingsError:
        return cls("\n".join(str(problem) for problem in problems), problems)
