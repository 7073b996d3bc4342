"""schemathesis against ``/openapi.json`` of a live server (SQLite): no 5xx, and every answer matches the
document (status code documented, content type and body as declared, problem documents included).

Bounded and deterministic: a fixed number of examples per operation with Hypothesis derandomized, so a
run takes well under a minute on two cores and a failure reproduces. Every operation is exercised with
valid data (admin key), with invalid data (the 422 problems must match the document too) and without a
key (401 problems). Failures are collected over all operations and reported together.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from headrace.schemas.auth import Scope
from headrace.server.db import Database
from headrace.server.db.migrate import upgrade
from headrace.server.operations.api_keys import create_api_key
from headrace.testing.server import running_server

schemathesis = pytest.importorskip("schemathesis")

VALID_EXAMPLES = 20
INVALID_EXAMPLES = 8
UNAUTHENTICATED_EXAMPLES = 2


def _checks() -> list[Any]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _run(operation: Any, mode: Any, examples: int, headers: dict[str, str]) -> str | None:
    """Run ``examples`` cases of ``operation``; the failure report, or None."""
    from schemathesis.errors import FailureGroup

    checks = _checks()

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=checks)

    try:
        check()
    except Unsatisfiable:  # nothing to make invalid: an operation without parameters or body
        return None
    except (AssertionError, FailureGroup) as failure:  # a check failed, or several (a group)
        return str(failure)
    return None


def test_the_api_keeps_to_its_openapi_document(tmp_path: Path, settings_for: Any) -> None:
    from schemathesis import GenerationMode

    server_settings = settings_for(f"sqlite:///{tmp_path / 'schemathesis.db'}", server_retention_enabled=False)

    async def bootstrap() -> str:
        async with Database.from_settings(server_settings) as database:
            await upgrade(database)
            return (await create_api_key(database, "schemathesis", Scope.ADMIN)).key

    key = asyncio.run(bootstrap())
    admin = {"Authorization": f"Bearer {key}"}
    failures: dict[str, str] = {}
    with running_server(server_settings) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 5
        for operation in operations:
            for label, mode, examples, headers in (
                ("valid", GenerationMode.POSITIVE, VALID_EXAMPLES, admin),
                ("invalid", GenerationMode.NEGATIVE, INVALID_EXAMPLES, admin),
                ("no key", GenerationMode.POSITIVE, UNAUTHENTICATED_EXAMPLES, {}),
            ):
                report = _run(operation, mode, examples, headers)
                if report is not None:
                    failures[f"{operation.label} ({label} data)"] = report
    assert not failures, "\n\n".join(f"=== {name}\n{report}" for name, report in failures.items())
