"""Start-up benchmarks: ``import headrace``, ``headrace --help`` and plugin discovery.

Run with ``uv run python benchmarks/bench_startup.py [--repeat N] [--plugins N]``. Each figure is
printed as one JSON line::

    {"name": "import_headrace", "value": 14.2, "unit": "ms", "budget": 150.0, "within_budget": true, ...}

Every measurement runs in fresh subprocesses and reports the median. The subprocesses get their own
bytecode cache (``PYTHONPYCACHEPREFIX`` in a temporary folder, warmed by one untimed run), so the
figures match an installed package with compiled bytecode even where ``PYTHONDONTWRITEBYTECODE`` is
set, and nothing is written into the checkout. A figure over its budget is reported, never fatal:
the exit status is 0 unless a measured command itself fails (then 2). See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_IMPORT_MS = 150.0
BUDGET_HELP_MS = 300.0
BUDGET_DISCOVERY_MS = 50.0

PLUGIN_SOURCE = """
from headrace.plugins import hookimpl
from headrace.plugins.types import StorageBackend


@hookimpl
def headrace_storage_backends():
    return [
        StorageBackend(
            name="bench{index}",
            implementation="bench_plugin_{index}.impl:FileSystem",
            description="Benchmark plugin {index}.",
        )
    ]
"""

# Runs in a subprocess with the plugin folder on PYTHONPATH: imports first, then times discovery alone.
DISCOVERY_PROBE = """
import json, time
from headrace.plugins.manager import build_plugin_manager

start = time.perf_counter()
manager = build_plugin_manager()
records = manager.collect_all()
elapsed = time.perf_counter() - start
active = sum(1 for record in records if record.status.value == "active" and record.name.startswith("bench-plugin-"))
print(json.dumps({"seconds": elapsed, "active": active}))
"""


class MeasurementError(RuntimeError):
    """A measured command failed: a bug to fix, not a slow start-up."""


def _environment(scratch: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("HEADRACE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    env["HEADRACE_HOME"] = str(scratch / "home")
    env.update(extra or {})
    return env


def _run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise MeasurementError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return done


def wall_time_ms(command: list[str], env: dict[str, str], cwd: Path, repeat: int) -> float:
    """Median wall time of ``command`` in fresh processes, after one untimed warm-up run."""
    _run(command, env, cwd)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        _run(command, env, cwd)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def discovery_ms(plugins: int, env: dict[str, str], cwd: Path, scratch: Path, repeat: int) -> tuple[float, int]:
    """Median time of ``build_plugin_manager()`` + ``collect_all()`` with ``plugins`` extra distributions."""
    from headrace.testing.plugins import write_plugin_distribution

    site = scratch / "site"
    for index in range(plugins):
        write_plugin_distribution(
            site,
            f"bench-plugin-{index}",
            module=f"bench_plugin_{index}",
            source=PLUGIN_SOURCE.format(index=index),
            requires=["headrace>=0.1"],
        )
    path = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    probe_env = {**env, "PYTHONPATH": path}
    command = [sys.executable, "-c", DISCOVERY_PROBE]
    _run(command, probe_env, cwd)  # warm the bytecode cache
    samples, active = [], 0
    for _ in range(repeat):
        result = json.loads(_run(command, probe_env, cwd).stdout)
        samples.append(result["seconds"])
        active = result["active"]
    if active != plugins:
        raise MeasurementError(f"expected {plugins} active benchmark plugins, found {active}")
    return statistics.median(samples) * 1000, active


def _cli_command() -> list[str]:
    script = Path(sys.executable).with_name("headrace")
    if script.exists():
        return [str(script)]
    found = shutil.which("headrace")
    return [found] if found else [sys.executable, "-m", "headrace.cli.main"]


def _report(name: str, value: float, budget: float, repeat: int, **extra: object) -> None:
    figure = {
        "name": name,
        "value": round(value, 2),
        "unit": "ms",
        "budget": budget,
        "within_budget": value < budget,
        "repeat": repeat,
        **extra,
    }
    print(json.dumps(figure), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="timed runs per figure (median reported)")
    parser.add_argument("--plugins", type=int, default=30, help="plugin distributions for the discovery figure")
    args = parser.parse_args(argv)
    repeat = max(1, args.repeat)

    with tempfile.TemporaryDirectory(prefix="headrace-bench-") as folder:
        scratch = Path(folder)
        cwd = scratch / "cwd"  # no .env here
        cwd.mkdir()
        env = _environment(scratch)
        try:
            _report(
                "import_headrace",
                wall_time_ms([sys.executable, "-c", "import headrace"], env, cwd, repeat),
                BUDGET_IMPORT_MS,
                repeat,
            )
            _report("cli_help", wall_time_ms([*_cli_command(), "--help"], env, cwd, repeat), BUDGET_HELP_MS, repeat)
            value, active = discovery_ms(args.plugins, env, cwd, scratch, repeat)
            _report("plugin_discovery", value, BUDGET_DISCOVERY_MS, repeat, plugins=active)
        except MeasurementError as exc:
            print(json.dumps({"name": "error", "error": str(exc)}), flush=True)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
