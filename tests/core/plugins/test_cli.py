"""``headrace plugins list`` / ``check`` and the host process, as real subprocesses over real plugin distributions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from .conftest import GOOD_PLUGIN, IMPORT_MARKER, PluginSite, Runner

# What the host sees in a fresh process: every provider hook collected (as a host does over its life),
# then the built-in storage and the good plugin selected by name.
HOST_SCRIPT = """
import json, sys
from headrace.plugins import get_plugin_manager
from headrace.plugins.hookspecs import PROVIDER_HOOKS

manager = get_plugin_manager()
for hook in PROVIDER_HOOKS:
    manager.registrations(hook)
store = "headrace_storage_backends"
print(json.dumps({
    "selected": [manager.select(store, name).name for name in ("file", "memory", "good-store")],
    "modules": sorted(name for name in sys.modules if name.startswith("hr_")),
}))
"""


@dataclass
class Case:
    """One broken plugin, and what the listing must say about it."""

    source: str
    status: str
    error: str
    requires: tuple[str, ...] = ()
    entry_point: str | None = None
    extra: list[tuple[str, str, str | None]] = field(default_factory=list)  # (distribution, source, entry point)


CASES = {
    "import-failure": Case(
        source="import acme_cloud_sdk_that_is_not_installed\n",
        status="failed",
        error="import failed: ModuleNotFoundError: No module named 'acme_cloud_sdk_that_is_not_installed'",
    ),
    "raises-in-hook": Case(
        source="""
            from headrace.plugins import hookimpl

            @hookimpl
            def headrace_storage_backends():
                raise RuntimeError("bucket listing exploded")
            """,
        status="failed",
        error="headrace_storage_backends raised RuntimeError: bucket listing exploded",
    ),
    "invalid-registration-name": Case(
        source="""
            from headrace.plugins import hookimpl
            from headrace.plugins.types import Notifier

            @hookimpl
            def headrace_notifiers():
                return [Notifier(name="Bad Name", implementation="impl:Bad")]
            """,
        status="failed",
        error="headrace_notifiers raised ValueError: invalid notifier name 'Bad Name'",
    ),
    "incompatible": Case(
        source=IMPORT_MARKER,
        requires=("headrace>=99",),
        status="incompatible",
        error="requires headrace>=99, but headrace 0.1.0 is installed",
    ),
    "misspelled-hookimpl": Case(
        source="""
            from headrace.plugins import hookimpl

            @hookimpl
            def headrace_on_flow_run_state_changed(flow_run, old_state, new_state):
                pass
            """,
        status="failed",
        error="implements unknown hook 'headrace_on_flow_run_state_changed'; "
        "did you mean 'headrace_on_flow_run_state_change'?",
    ),
    "async-hookimpl": Case(
        source="""
            from headrace.plugins import hookimpl

            @hookimpl
            async def headrace_on_event(event):
                pass
            """,
        status="failed",
        error="hook 'headrace_on_event' is 'async def', but headrace hooks are synchronous",
    ),
    "duplicate-entry-point-name": Case(
        source=GOOD_PLUGIN.replace("good-store", "second-store"),
        entry_point="acme",
        extra=[("acme-first", GOOD_PLUGIN.replace("good-store", "first-store"), "acme")],
        status="failed",
        error="'acme' (distribution acme-first 1.0.0)",
    ),
}


@pytest.mark.parametrize("case_name", list(CASES))
def test_broken_plugin_is_listed_and_the_host_keeps_working(
    plugin_site: PluginSite, runner: Runner, case_name: str
) -> None:
    case = CASES[case_name]
    plugin_site.add("acme-good", GOOD_PLUGIN)
    for distribution, source, entry_point in case.extra:
        plugin_site.add(distribution, source, entry_point=entry_point)
    module = plugin_site.add("acme-problem", case.source, requires=case.requires, entry_point=case.entry_point)

    listing = runner.listing()
    problem = listing["by_distribution"]["acme-problem"]
    assert problem["status"] == case.status
    assert case.error in problem["error"]
    assert problem["version"] == "1.0.0"
    assert listing["by_distribution"]["acme-good"]["status"] == "active"
    assert listing["by_distribution"]["acme-good"]["provides"] == ["storage backend:good-store"]
    assert listing["by_name"]["builtin-storage"]["provides"] == ["storage backend:file", "storage backend:memory"]
    if case.source.startswith(IMPORT_MARKER):
        assert not plugin_site.imported(module)

    table = runner.headrace("plugins", "list")
    assert table.returncode == 0, table.stderr
    assert case.status in table.stdout
    assert "acme-problem" in table.stdout

    check = runner.headrace("plugins", "check")
    assert check.returncode == 1
    assert f"'{problem['name']}' (distribution acme-problem 1.0.0) is {case.status}" in check.stderr
    assert case.error in " ".join(check.stderr.split())

    host = runner.python(HOST_SCRIPT)
    assert host.returncode == 0, host.stderr
    assert json.loads(host.stdout)["selected"] == ["file", "memory", "good-store"]
    assert "acme-problem" in host.stderr  # warned about (once) on stderr


def test_name_conflict_is_listed_with_both_distributions(plugin_site: PluginSite, runner: Runner) -> None:
    plugin_site.add("acme-good", GOOD_PLUGIN)
    for distribution in ("acme-s3-fast", "acme-s3-cheap"):
        plugin_site.add(
            distribution,
            """
            from headrace.plugins import hookimpl
            from headrace.plugins.types import StorageBackend

            @hookimpl
            def headrace_storage_backends():
                return [StorageBackend(name="s3", implementation="impl:S3")]
            """,
        )
    listing = runner.listing()
    assert listing["by_distribution"]["acme-s3-fast"]["status"] == "active"
    assert listing["by_distribution"]["acme-s3-cheap"]["status"] == "active"
    (conflict,) = listing["conflicts"]
    assert conflict["hook"] == "headrace_storage_backends"
    assert conflict["name"] == "s3"
    assert sorted(conflict["distributions"]) == ["acme-s3-cheap", "acme-s3-fast"]
    assert "acme-s3-cheap 1.0.0" in conflict["message"]
    assert "acme-s3-fast 1.0.0" in conflict["message"]

    check = runner.headrace("plugins", "check")
    assert check.returncode == 1
    assert "conflict: headrace_storage_backends: the name 's3' is offered by" in check.stderr
    assert "acme-s3-fast" in check.stderr
    assert "acme-s3-cheap" in check.stderr

    host = runner.python(HOST_SCRIPT)
    assert host.returncode == 0, host.stderr
    assert json.loads(host.stdout)["selected"] == ["file", "memory", "good-store"]


def test_disabled_plugin_is_listed_and_never_imported(plugin_site: PluginSite, runner: Runner) -> None:
    plugin_site.add("acme-good", GOOD_PLUGIN)
    module = plugin_site.add("acme-off", IMPORT_MARKER + GOOD_PLUGIN.replace("good-store", "off-store"))
    env = {"HEADRACE_PLUGINS_DISABLED": "acme-off"}

    listing = runner.listing(env)
    assert listing["by_distribution"]["acme-off"]["status"] == "disabled"
    assert listing["by_distribution"]["acme-off"]["provides"] == []
    assert listing["by_distribution"]["acme-good"]["status"] == "active"

    check = runner.headrace("plugins", "check", env=env)
    assert check.returncode == 0, check.stderr

    host = runner.python(HOST_SCRIPT, env)
    assert host.returncode == 0, host.stderr
    result = json.loads(host.stdout)
    assert result["selected"] == ["file", "memory", "good-store"]
    assert module not in result["modules"]
    assert any(name.startswith("hr_acme_good_") for name in result["modules"])  # the probe itself can fail
    assert not plugin_site.imported(module)

    # Without the setting the same plugin is imported: the marker is a working probe.
    assert runner.listing()["by_distribution"]["acme-off"]["status"] == "active"
    assert plugin_site.imported(module)


def test_clean_set_passes_check(plugin_site: PluginSite, runner: Runner) -> None:
    plugin_site.add("acme-good", GOOD_PLUGIN)
    plugin_site.add(
        "acme-blocks", GOOD_PLUGIN.replace("StorageBackend", "BlockType").replace("storage_backends", "block_types")
    )
    check = runner.headrace("plugins", "check")
    assert check.returncode == 0, check.stderr
    builtins = sum(1 for plugin in runner.listing()["plugins"] if plugin["distribution"] == "headrace")
    assert f"ok: {builtins + 2} active plugin(s), no failures or conflicts" in check.stdout
    listing = runner.listing()
    # The workspace's own integrations are installed too; the harness disables them to keep tests apart.
    enabled = [p for p in listing["plugins"] if p["status"] != "disabled"]
    assert {p["distribution"]: p["status"] for p in enabled} == {
        "headrace": "active",
        "acme-good": "active",
        "acme-blocks": "active",
    }
    assert listing["by_distribution"]["acme-blocks"]["provides"] == ["block type:good-store"]
    assert listing["conflicts"] == []


def test_strict_mode_makes_the_host_fail_but_listing_still_works(plugin_site: PluginSite, runner: Runner) -> None:
    plugin_site.add("acme-good", GOOD_PLUGIN)
    plugin_site.add("acme-broken", "raise RuntimeError('broken at import')\n")
    strict = {"HEADRACE_PLUGINS_STRICT": "true"}

    host = runner.python(HOST_SCRIPT, strict)
    assert host.returncode != 0
    assert "PluginError: plugin 'acme-broken' (distribution acme-broken 1.0.0) is failed" in host.stderr
    assert "HEADRACE_PLUGINS_STRICT is on" in host.stderr

    # The diagnostic commands are how one repairs this: they keep working and show everything.
    listing = runner.listing(strict)
    assert listing["by_distribution"]["acme-broken"]["status"] == "failed"
    assert listing["by_distribution"]["acme-broken"]["error"] == "import failed: RuntimeError: broken at import"
    check = runner.headrace("plugins", "check", env=strict)
    assert check.returncode == 1
    assert "acme-broken" in check.stderr

    # Non-strict, the same set is only a warning.
    host = runner.python(HOST_SCRIPT)
    assert host.returncode == 0, host.stderr
    assert "failed and was skipped" in host.stderr


def test_manager_is_built_lazily_once(plugin_site: PluginSite, runner: Runner) -> None:
    module = plugin_site.add("acme-good", IMPORT_MARKER + GOOD_PLUGIN)
    result = runner.python(
        f"""
        import sys
        import headrace, headrace.plugins
        from headrace.plugins import hookimpl
        from headrace.plugins.types import StorageBackend
        print("manager imported at import:", "headrace.plugins.manager" in sys.modules)
        print("plugin imported at import:", {module!r} in sys.modules)
        from headrace.plugins import get_plugin_manager, reset_plugin_manager
        first = get_plugin_manager()
        print("plugin imported on first use:", {module!r} in sys.modules)
        print("same manager:", get_plugin_manager() is first)
        reset_plugin_manager()
        print("rebuilt after reset:", get_plugin_manager() is not first)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "manager imported at import: False",
        "plugin imported at import: False",
        "plugin imported on first use: True",
        "same manager: True",
        "rebuilt after reset: True",
    ]


def test_plugin_cli_commands_are_added(plugin_site: PluginSite, runner: Runner) -> None:
    plugin_site.add(
        "acme-hello",
        """
        from headrace.plugins import hookimpl

        @hookimpl
        def headrace_cli(app):
            @app.command("hello")
            def hello(name: str = "world") -> None:
                print(f"hello {name}")
        """,
    )
    result = runner.headrace("hello", "--name", "ops")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello ops\n"
    listing = runner.listing()
    assert listing["by_distribution"]["acme-hello"]["hooks"] == ["headrace_cli"]
    assert listing["by_distribution"]["acme-hello"]["provides"] == []
    table = runner.headrace("plugins", "list")
    (row,) = [line for line in table.stdout.splitlines() if "acme-hello" in line]
    assert "headrace_cli" in row  # a plugin without registrations is listed with its hooks
