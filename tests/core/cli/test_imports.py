"""Start-up stays light: what ``import headrace`` and ``headrace --help`` import (no timing here; see
benchmarks/bench_startup.py for that)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points

HEAVY = {"pydantic", "pydantic_core", "pydantic_settings", "rich", "httpx", "sqlalchemy", "fastapi", "fsspec"}

REPORT = "import json, sys; print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"


def _top_level_modules(code: str, env: dict[str, str] | None = None) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{REPORT}"],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_headrace_imports_only_the_standard_library() -> None:
    baseline = _top_level_modules("pass")  # the interpreter's own start-up (site, .pth files)
    modules = _top_level_modules("import headrace")
    assert modules - baseline - set(sys.stdlib_module_names) == {"headrace"}


def test_import_headrace_settings_does_not_load_pydantic() -> None:
    modules = _top_level_modules("import headrace.settings")
    assert not modules & HEAVY


def test_get_settings_loads_pydantic_settings_on_first_use() -> None:
    modules = _top_level_modules("import headrace.settings as s; s.get_settings()")
    assert "pydantic_settings" in modules


def test_cli_help_imports_nothing_heavy() -> None:
    others = [point.name for point in entry_points(group="headrace") if not point.dist or point.dist.name != "headrace"]
    code = (
        "import contextlib, io\n"
        "from headrace.cli.main import run\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    run(['--help'])"
    )
    modules = _top_level_modules(code, env={"HEADRACE_PLUGINS_DISABLED": ",".join(others)})
    assert "typer" in modules  # the code under test did run
    assert not modules & HEAVY
