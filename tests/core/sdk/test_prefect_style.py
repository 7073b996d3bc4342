"""Flows written the way Prefect's tutorials write them run unchanged apart from the import line.

Each script runs as a real program (``python script.py``), in both modes: embedded, and against the live
server through ``HEADRACE_API_URL``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import Api

EXAMPLE = Path(__file__).parents[3] / "examples" / "first_flow.py"

# Prefect's tutorial style: decorators with and without arguments, retries, .submit(), .map(), unmapped,
# get_run_logger, log_prints, task_input_hash caching, wait/as_completed, a subflow, and the main guard.
TUTORIAL = textwrap.dedent(
    """
    import time
    from datetime import timedelta

    from prefect import flow, task, get_run_logger, unmapped
    from prefect.futures import as_completed, wait
    from prefect.tasks import task_input_hash

    ATTEMPTS = {}


    @task(retries=2, retry_delay_seconds=0.1)
    def extract(source: str) -> list[int]:
        ATTEMPTS[source] = ATTEMPTS.get(source, 0) + 1
        if ATTEMPTS[source] == 1:
            raise ConnectionError(f"{source} is not answering yet")
        return [1, 2, 3]


    @task(cache_key_fn=task_input_hash, cache_expiration=timedelta(minutes=5))
    def transform(rows: list[int], factor: int) -> int:
        return sum(rows) * factor


    @task
    def load(total: int) -> str:
        get_run_logger().info("loading %d", total)
        return f"loaded {total}"


    @flow
    def report(results: list[str]) -> int:
        return len(results)


    @flow(name="etl", log_prints=True)
    def etl(sources: list[str] = ["a", "b"], factor: int = 2) -> str:
        logger = get_run_logger()
        raw = extract.map(sources)
        totals = transform.map(raw, unmapped(factor))
        loads = [load.submit(total) for total in totals]
        wait(loads)
        results = [future.result() for future in as_completed(loads)]
        print(f"{report(results)} loads done")
        logger.info("done at %s", time.strftime("%H"))
        return ", ".join(sorted(results))


    if __name__ == "__main__":
        print("RESULT", etl())
    """
)


def _run(script: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HEADRACE_")}
    env["HEADRACE_HOME"] = os.environ["HEADRACE_HOME"]
    if "HEADRACE_API_URL" in os.environ:
        env["HEADRACE_API_URL"] = os.environ["HEADRACE_API_URL"]
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path, check=False
    )


def test_a_prefect_tutorial_flow_runs_with_only_the_import_lines_changed(api: Api, tmp_path: Path) -> None:
    source = TUTORIAL.replace("from prefect", "from headrace").replace("import prefect", "import headrace")
    assert source.count("headrace") == 3  # nothing but the import lines changed
    script = tmp_path / "etl.py"
    script.write_text(source, encoding="utf-8")
    done = _run(script, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RESULT loaded 12, loaded 12" in done.stdout
    assert "2 loads done" in done.stderr  # print() went to the run logger
    assert "Attempt 1 of 3 failed; retry 1 of 2" in done.stderr


def test_the_example_flow_runs(api: Api, sdk_mode: str, tmp_path: Path) -> None:
    from headrace.schemas.runs import FlowRunFilter

    done = _run(EXAMPLE, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Total: 81234 stars, 9 contributors" in done.stderr
    runs = api.client.read_flow_runs(FlowRunFilter(flow_names=["Repo Info"], limit=1)).items
    assert runs
    assert runs[0].state.type.value == "COMPLETED"
    assert len(api.task_runs(runs[0].id)) == 7


@pytest.mark.parametrize("name", ["flow", "task", "get_run_logger", "unmapped", "wait", "as_completed", "State"])
def test_the_tutorial_names_are_importable_from_headrace(name: str) -> None:
    import headrace

    assert getattr(headrace, name) is not None
