"""The plugin manager in-process: isolation of broken plugins, selection by name, conflicts, strict mode."""

from __future__ import annotations

import logging
import pickle
import sys
import uuid

import pluggy
import pytest

from headrace.plugins import PluginConflictError, PluginError, UnknownPluginName, hookimpl
from headrace.plugins.manager import HeadracePluginManager, build_plugin_manager
from headrace.plugins.records import PluginRecord, PluginStatus
from headrace.plugins.types import BlockType, StorageBackend
from headrace.testing.plugins import plugin_manager_with

from .conftest import GOOD_PLUGIN, IMPORT_MARKER, PluginSite, builtin_entry_points

STORAGE = "headrace_storage_backends"


def record_of(manager: HeadracePluginManager, distribution: str) -> PluginRecord:
    matches = [record for record in manager.collect_all() if record.distribution == distribution]
    assert len(matches) == 1, [record.as_dict() for record in manager.collect_all()]
    return matches[0]


def assert_host_works(manager: HeadracePluginManager) -> None:
    """The built-ins and the well-behaved plugin are still there, whatever else went wrong."""
    assert manager.select(STORAGE, "file").name == "file"
    assert manager.select(STORAGE, "memory").name == "memory"
    assert manager.select(STORAGE, "good-store").name == "good-store"
    builtins = [record for record in manager.collect_all() if record.distribution == "headrace"]
    assert builtins
    assert all(record.status is PluginStatus.ACTIVE for record in builtins)
    assert record_of(manager, "acme-good").status is PluginStatus.ACTIVE


def test_builtins_register_through_entry_points() -> None:
    manager = build_plugin_manager(points=builtin_entry_points())
    records = {record.name: record for record in manager.collect_all()}
    assert all(record.distribution == "headrace" for record in records.values())
    assert all(record.status is PluginStatus.ACTIVE for record in records.values())
    record = records["builtin-storage"]
    assert record.provides == ["storage backend:file", "storage backend:memory"]
    assert record.hooks == [STORAGE]


def test_import_failure_is_recorded_and_skipped(plugin_site: PluginSite, caplog: pytest.LogCaptureFixture) -> None:
    plugin_site.add("acme-good", GOOD_PLUGIN)
    plugin_site.add("acme-broken", "import acme_cloud_sdk_that_is_not_installed\n", version="2.3.4")
    with caplog.at_level(logging.WARNING, logger="headrace.plugins"):
        manager = plugin_site.manager()
    record = record_of(manager, "acme-broken")
    assert record.status is PluginStatus.FAILED
    assert record.version == "2.3.4"
    assert record.error is not None
    assert record.error.startswith("import failed: ModuleNotFoundError")
    assert "acme_cloud_sdk_that_is_not_installed" in record.error
    assert [r.getMessage() for r in caplog.records if "acme-broken" in r.getMessage()] == [
        f"headrace plugin 'acme-broken' (distribution acme-broken 2.3.4) failed and was skipped: {record.error}"
    ]
    assert_host_works(manager)


def test_a_failure_is_warned_about_once_per_process(plugin_site: PluginSite, caplog: pytest.LogCaptureFixture) -> None:
    distribution = f"acme-once-{uuid.uuid4().hex[:6]}"
    plugin_site.add(distribution, "raise RuntimeError('boom at import')\n")
    with caplog.at_level(logging.WARNING, logger="headrace.plugins"):
        first = plugin_site.manager()
        second = plugin_site.manager()
    assert record_of(first, distribution).status is PluginStatus.FAILED
    assert record_of(second, distribution).status is PluginStatus.FAILED
    assert len([r for r in caplog.records if distribution in r.getMessage()]) == 1


def test_hook_that_raises_fails_its_plugin_only(plugin_site: PluginSite) -> None:
    plugin_site.add("acme-good", GOOD_PLUGIN)
    plugin_site.add(
        "acme-flaky",
        """
        from headrace.plugins import hookimpl
        from headrace.plugins.types import BlockType

        @hookimpl
        def headrace_block_types():
            return [BlockType(name="flaky-block", implementation="flaky_impl:Block")]

        @hookimpl
        def headrace_storage_backends():
            raise RuntimeError("bucket listing exploded")
        """,
    )
    manager = plugin_site.manager()
    # Its block type was collected before its storage hook raised; the failure takes all of it away.
    assert "flaky-block" in [r.name for r in manager.registrations("headrace_block_types")]
    record = record_of(manager, "acme-flaky")
    assert record.status is PluginStatus.FAILED
    assert record.error == "headrace_storage_backends raised RuntimeError: bucket listing exploded"
    assert record.provides == []
    assert "flaky-block" not in [r.name for r in manager.registrations("headrace_block_types")]
    assert_host_works(manager)


def test_conflicts_survive_a_plugin_failing_in_a_later_hook(plugin_site: PluginSite) -> None:
    shared_block = """
        from headrace.plugins import hookimpl
        from headrace.plugins.types import BlockType

        @hookimpl
        def headrace_block_types():
            return [BlockType(name="shared", implementation="shared_impl:Block")]
        """
    plugin_site.add("acme-left", shared_block)
    plugin_site.add("acme-right", shared_block)
    plugin_site.add(
        "acme-late-failure",
        """
        from headrace.plugins import hookimpl

        @hookimpl
        def headrace_task_runners():
            raise ValueError("no runner today")
        """,
    )
    manager = plugin_site.manager()
    # The first round over the hooks already has to get it right.
    assert [(c.hook, c.name) for c in manager.conflicts()] == [("headrace_block_types", "shared")]
    records = manager.collect_all()
    assert record_of(manager, "acme-late-failure").status is PluginStatus.FAILED
    assert {r.distribution: r.provides for r in records if r.distribution in ("acme-left", "acme-right")} == {
        "acme-left": ["block type:shared"],
        "acme-right": ["block type:shared"],
    }


def test_same_name_from_two_plugins_is_a_conflict_naming_both(plugin_site: PluginSite) -> None:
    plugin_site.add("acme-good", GOOD_PLUGIN)
    for distribution in ("acme-s3-fast", "acme-s3-cheap"):
        plugin_site.add(
            distribution,
            f"""
            from headrace.plugins import hookimpl
            from headrace.plugins.types import StorageBackend

            @hookimpl
            def headrace_storage_backends():
                return [
                    StorageBackend(name="s3", implementation="impl:S3"),
                    StorageBackend(name="{distribution}", implementation="impl:Own"),
                ]
            """,
        )
    manager = plugin_site.manager()
    (conflict,) = manager.conflicts()
    assert conflict.as_dict()["distributions"] == ["acme-s3-cheap", "acme-s3-fast"]
    with pytest.raises(PluginConflictError) as caught:
        manager.select(STORAGE, "s3")
    assert "acme-s3-fast 1.0.0" in str(caught.value)
    assert "acme-s3-cheap 1.0.0" in str(caught.value)
    # Nothing else is affected: both plugins stay active and their other names are selectable.
    assert manager.select(STORAGE, "acme-s3-fast").name == "acme-s3-fast"
    assert record_of(manager, "acme-s3-cheap").status is PluginStatus.ACTIVE
    assert_host_works(manager)


@pytest.mark.parametrize("by", ["entry point", "distribution"])
def test_disabled_plugin_is_never_imported(plugin_site: PluginSite, by: str) -> None:
    plugin_site.add("acme-good", GOOD_PLUGIN)
    module = plugin_site.add(
        "acme-off", IMPORT_MARKER + GOOD_PLUGIN.replace("good-store", "off-store"), entry_point="off"
    )
    manager = plugin_site.manager(disabled=["off" if by == "entry point" else "ACME_off"])
    record = record_of(manager, "acme-off")
    assert record.status is PluginStatus.DISABLED
    assert module not in sys.modules
    assert not plugin_site.imported(module)
    with pytest.raises(UnknownPluginName):
        manager.select(STORAGE, "off-store")
    assert_host_works(manager)


@pytest.mark.parametrize(
    ("requirement", "status"),
    [
        ("headrace>=99", PluginStatus.INCOMPATIBLE),
        ("headrace<0.1", PluginStatus.INCOMPATIBLE),
        ("headrace>=0.1,<1", PluginStatus.ACTIVE),
        ("headrace[aws]>=0.1", PluginStatus.ACTIVE),
        ('headrace>=99; extra == "test"', PluginStatus.ACTIVE),
        ("httpx>=99", PluginStatus.ACTIVE),  # only the headrace requirement is checked here
    ],
)
def test_headrace_requirement_is_checked_before_import(
    plugin_site: PluginSite, requirement: str, status: PluginStatus
) -> None:
    plugin_site.add("acme-good", GOOD_PLUGIN)
    module = plugin_site.add("acme-future", IMPORT_MARKER, requires=[requirement, "pluggy>=1"])
    manager = plugin_site.manager()
    record = record_of(manager, "acme-future")
    assert record.status is status
    if status is PluginStatus.INCOMPATIBLE:
        assert record.error is not None
        assert record.error.startswith("requires headrace")
        assert record.error.endswith("but headrace 0.1.0 is installed")
        assert not plugin_site.imported(module)
    else:
        assert record.error is None
        assert plugin_site.imported(module)
    assert_host_works(manager)


def test_misspelled_hookimpl_fails_loudly(plugin_site: PluginSite) -> None:
    plugin_site.add("acme-good", GOOD_PLUGIN)
    plugin_site.add(
        "acme-typo",
        """
        from headrace.plugins import hookimpl

        @hookimpl
        def headrace_storage_backend():
            return []
        """,
    )
    manager = plugin_site.manager()
    record = record_of(manager, "acme-typo")
    assert record.status is PluginStatus.FAILED
    assert record.error == (
        "plugin 'acme-typo' implements unknown hook 'headrace_storage_backend'; "
        "did you mean 'headrace_storage_backends'?"
    )
    assert_host_works(manager)


def test_misspelled_hookimpl_on_a_directly_registered_object_raises() -> None:
    class Typo:
        @hookimpl
        def headrace_on_evnt(self, event: object) -> None:
            raise AssertionError("never called")

    with pytest.raises(PluginError, match=r"unknown hook 'headrace_on_evnt'; did you mean 'headrace_on_event'\?"):
        plugin_manager_with(Typo())


def test_check_pending_reports_an_implementation_without_a_spec() -> None:
    class Sneaky:
        @hookimpl
        def headrace_no_such_hook(self) -> None:
            raise AssertionError("never called")

    manager = plugin_manager_with()
    pluggy.PluginManager.register(manager, Sneaky())  # bypass headrace's own validation
    with pytest.raises(PluginError, match="headrace_no_such_hook"):
        manager.check_pending()


def test_hookimpl_with_unknown_argument_fails_the_plugin(plugin_site: PluginSite) -> None:
    plugin_site.add("acme-good", GOOD_PLUGIN)
    plugin_site.add(
        "acme-args",
        """
        from headrace.plugins import hookimpl

        @hookimpl
        def headrace_on_event(evt):
            pass
        """,
    )
    manager = plugin_site.manager()
    record = record_of(manager, "acme-args")
    assert record.status is PluginStatus.FAILED
    assert record.error is not None
    assert "'evt'" in record.error
    assert "can not be found in the hookspec" in record.error
    assert_host_works(manager)


@pytest.mark.parametrize(
    "source",
    [
        "async def headrace_on_event(event):\n    pass\n",
        "async def headrace_storage_backends():\n    yield None\n",
    ],
    ids=["coroutine", "async-generator"],
)
def test_async_hookimpl_is_refused_with_a_clear_message(plugin_site: PluginSite, source: str) -> None:
    plugin_site.add("acme-good", GOOD_PLUGIN)
    plugin_site.add("acme-async", "from headrace.plugins import hookimpl\n\n@hookimpl\n" + source)
    manager = plugin_site.manager()
    record = record_of(manager, "acme-async")
    assert record.status is PluginStatus.FAILED
    assert record.error is not None
    assert "is 'async def', but headrace hooks are synchronous" in record.error
    assert "make it a plain 'def'" in record.error
    assert_host_works(manager)


def test_async_hookimpl_on_a_directly_registered_object_raises() -> None:
    class Async:
        @hookimpl
        async def headrace_on_flow_run_state_change(
            self, flow_run: object, old_state: object, new_state: object
        ) -> None:
            raise AssertionError("never awaited")

    with pytest.raises(PluginError, match="'headrace_on_flow_run_state_change' is 'async def'"):
        plugin_manager_with(Async())


def test_sync_hook_returning_a_coroutine_is_a_failure_not_a_silent_no_op() -> None:
    async def later() -> list[StorageBackend]:
        return [StorageBackend(name="late", implementation="x:y")]

    class Sneaky:
        @hookimpl
        def headrace_storage_backends(self) -> object:
            return later()

    manager = plugin_manager_with(Sneaky())
    assert manager.registrations(STORAGE) == []
    (record,) = manager.collect_all()
    assert record.status is PluginStatus.FAILED
    assert record.error == (
        "headrace_storage_backends raised TypeError: "
        "headrace_storage_backends returned an awaitable, but hooks are synchronous"
    )


def test_wrapper_hookimpl_is_refused() -> None:
    class Wrapper:
        @hookimpl(wrapper=True)
        def headrace_storage_backends(self) -> object:
            return (yield)

    with pytest.raises(PluginError, match="declared as a wrapper"):
        plugin_manager_with(Wrapper())


def test_registration_with_invalid_name_fails_the_plugin_not_the_host(plugin_site: PluginSite) -> None:
    plugin_site.add("acme-good", GOOD_PLUGIN)
    plugin_site.add(
        "acme-badname",
        """
        from headrace.plugins import hookimpl
        from headrace.plugins.types import StorageBackend

        @hookimpl
        def headrace_storage_backends():
            return [StorageBackend(name="Bad Name", implementation="impl:Bad")]
        """,
    )
    manager = plugin_site.manager()
    record = record_of(manager, "acme-badname")
    assert record.status is PluginStatus.FAILED
    assert record.error is not None
    assert record.error.startswith(
        "headrace_storage_backends raised ValueError: invalid storage backend name 'Bad Name'"
    )
    assert_host_works(manager)


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (
            "StorageBackend(name='single', implementation='a:b')",
            "must return a list of StorageBackend objects, not a single one",
        ),
        ("[BlockType(name='wrong-kind', implementation='a:b')]", "must return StorageBackend objects, got BlockType"),
        ("'file'", "must return a list of StorageBackend objects, got str"),
        ("42", "must return a list of StorageBackend objects, got int"),
    ],
)
def test_provider_hook_returning_the_wrong_thing_fails_the_plugin(returned: str, message: str) -> None:
    namespace = {"BlockType": BlockType, "StorageBackend": StorageBackend}

    class Wrong:
        @hookimpl
        def headrace_storage_backends(self) -> object:
            return eval(returned, namespace)

    manager = plugin_manager_with(Wrong())
    assert manager.registrations(STORAGE) == []
    (record,) = manager.collect_all()
    assert record.status is PluginStatus.FAILED
    assert record.error is not None
    assert record.error.endswith(message)


def test_provider_hook_returning_none_offers_nothing() -> None:
    class Nothing:
        @hookimpl
        def headrace_storage_backends(self) -> None:
            return None

    manager = plugin_manager_with(Nothing())
    assert manager.registrations(STORAGE) == []
    (record,) = manager.collect_all()
    assert record.status is PluginStatus.ACTIVE


def test_duplicate_entry_point_name_fails_both_plugins(plugin_site: PluginSite) -> None:
    plugin_site.add("acme-good", GOOD_PLUGIN)
    plugin_site.add("acme-one", GOOD_PLUGIN.replace("good-store", "one-store"), entry_point="acme")
    plugin_site.add("acme-two", GOOD_PLUGIN.replace("good-store", "two-store"), entry_point="acme")
    manager = plugin_site.manager()
    one, two = record_of(manager, "acme-one"), record_of(manager, "acme-two")
    # Which of the two is found first depends on the file system, so neither may win.
    for record in (one, two):
        assert (record.name, record.status) == ("acme", PluginStatus.FAILED)
        assert record.error is not None
        assert record.error.startswith("the plugin name 'acme' is used by 'acme' (distribution acme-")
        assert "'acme' (distribution acme-one 1.0.0)" in record.error
        assert "'acme' (distribution acme-two 1.0.0)" in record.error
    assert {r.name for r in manager.registrations(STORAGE)} == {"file", "memory", "good-store"}
    assert_host_works(manager)


def test_disabling_one_of_two_duplicated_names_settles_it(plugin_site: PluginSite) -> None:
    plugin_site.add("acme-one", GOOD_PLUGIN.replace("good-store", "one-store"), entry_point="acme")
    module = plugin_site.add("acme-two", IMPORT_MARKER + GOOD_PLUGIN, entry_point="acme")
    manager = plugin_site.manager(disabled=["acme-two"])
    assert {r.distribution: r.status for r in manager.collect_all()} == {
        "headrace": PluginStatus.ACTIVE,
        "acme-one": PluginStatus.ACTIVE,
        "acme-two": PluginStatus.DISABLED,
    }
    assert manager.select(STORAGE, "one-store").name == "one-store"
    assert not plugin_site.imported(module)


def test_disabling_a_duplicated_entry_point_name_disables_both(plugin_site: PluginSite) -> None:
    plugin_site.add("acme-one", GOOD_PLUGIN, entry_point="acme")
    plugin_site.add("acme-two", GOOD_PLUGIN, entry_point="acme")
    manager = plugin_site.manager(disabled=["acme"])
    assert {r.distribution: r.status for r in manager.collect_all()} == {
        "headrace": PluginStatus.ACTIVE,
        "acme-one": PluginStatus.DISABLED,
        "acme-two": PluginStatus.DISABLED,
    }


@pytest.mark.parametrize(
    ("distribution", "source", "requires"),
    [
        ("acme-broken", "import acme_cloud_sdk_that_is_not_installed\n", ()),
        (
            "acme-flaky",
            "from headrace.plugins import hookimpl\n\n@hookimpl\ndef headrace_task_runners():\n    1 / 0\n",
            (),
        ),
        ("acme-future", "", ("headrace>=99",)),
        ("acme-typo", "from headrace.plugins import hookimpl\n\n@hookimpl\ndef headrace_notifier():\n    pass\n", ()),
        (
            "acme-async",
            "from headrace.plugins import hookimpl\n\n@hookimpl\nasync def headrace_on_event(event):\n    pass\n",
            (),
        ),
    ],
    ids=["import-failure", "raises-in-hook", "incompatible", "misspelled", "async"],
)
def test_strict_mode_turns_a_plugin_failure_into_an_error(
    plugin_site: PluginSite, distribution: str, source: str, requires: tuple[str, ...]
) -> None:
    plugin_site.add(distribution, source, requires=requires)
    assert record_of(plugin_site.manager(), distribution).status is not PluginStatus.ACTIVE
    with pytest.raises(
        PluginError,
        match=rf"plugin '{distribution}' \(distribution {distribution} 1.0.0\) is .*HEADRACE_PLUGINS_STRICT is on",
    ):
        plugin_site.manager(strict=True).collect_all()


def test_strict_mode_turns_a_name_conflict_into_an_error(plugin_site: PluginSite) -> None:
    plugin_site.add("acme-left", GOOD_PLUGIN)
    plugin_site.add("acme-right", GOOD_PLUGIN)
    manager = plugin_site.manager(strict=True)
    with pytest.raises(PluginConflictError, match=r"acme-left 1\.0\.0.*acme-right 1\.0\.0.*HEADRACE_PLUGINS_STRICT"):
        manager.select(STORAGE, "file")


def test_strict_mode_accepts_disabled_plugins(plugin_site: PluginSite) -> None:
    module = plugin_site.add("acme-broken", IMPORT_MARKER + "raise RuntimeError('never')\n")
    manager = plugin_site.manager(strict=True, disabled=["acme-broken"])
    assert record_of(manager, "acme-broken").status is PluginStatus.DISABLED
    assert not plugin_site.imported(module)


def test_pickling_the_manager_raises_a_clear_type_error() -> None:
    manager = build_plugin_manager(points=builtin_entry_points())
    with pytest.raises(TypeError, match=r"cannot be pickled; in another process call .*get_plugin_manager\(\)"):
        pickle.dumps(manager)


def test_select_unknown_name_lists_the_choices() -> None:
    manager = build_plugin_manager(points=builtin_entry_points())
    with pytest.raises(UnknownPluginName) as caught:
        manager.select(STORAGE, "x")
    assert str(caught.value) == "unknown storage backend 'x'; choose one of: file, memory"
    assert isinstance(caught.value, LookupError)


def test_select_with_nothing_installed_says_so() -> None:
    with pytest.raises(UnknownPluginName, match=r"^unknown task runner 'dask'; choose one of: \(none installed\)$"):
        plugin_manager_with().select("headrace_task_runners", "dask")


def test_hook_kinds_are_not_interchangeable() -> None:
    manager = plugin_manager_with()
    with pytest.raises(ValueError, match="'headrace_on_event' is not a provider hook"):
        manager.registrations("headrace_on_event")
    with pytest.raises(ValueError, match="'headrace_storage_backends' is not an event hook"):
        manager.fire("headrace_storage_backends")


def test_fire_checks_its_arguments_against_the_spec() -> None:
    with pytest.raises(TypeError, match="headrace_on_event takes the keyword arguments event; got evnt"):
        plugin_manager_with().fire("headrace_on_event", evnt={})


def test_event_hook_that_raises_is_counted_and_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    received: list[str] = []

    class Broken:
        @hookimpl
        def headrace_on_event(self, event: dict[str, str]) -> None:
            raise RuntimeError("tap is broken")

    class Tap:
        @hookimpl
        def headrace_on_event(self, event: dict[str, str]) -> None:
            received.append(event["event"])

    broken, tap = Broken(), Tap()
    manager = plugin_manager_with(tap, broken, Tap())
    with caplog.at_level(logging.WARNING, logger="headrace.plugins"):
        manager.fire("headrace_on_event", event={"event": "one"})
        manager.fire("headrace_on_event", event={"event": "two"})
    assert received == ["one", "one", "two", "two"]
    counts = {record.name: record.event_errors for record in manager.collect_all()}
    assert counts[manager.get_name(broken)] == 2
    assert counts[manager.get_name(tap)] == 0
    warnings = [r for r in caplog.records if "raised in headrace_on_event" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].exc_info is not None
    # Reported, not fatal: the plugin keeps its place.
    assert {record.status for record in manager.collect_all()} == {PluginStatus.ACTIVE}


def test_event_hook_that_raises_is_an_error_in_strict_mode() -> None:
    class Broken:
        @hookimpl
        def headrace_on_event(self, event: object) -> None:
            raise RuntimeError("tap is broken")

    manager = plugin_manager_with(Broken(), strict=True)
    with pytest.raises(PluginError, match="raised in headrace_on_event: RuntimeError: tap is broken") as caught:
        manager.fire("headrace_on_event", event={})
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_unregistering_a_plugin_forgets_its_registrations() -> None:
    class Store:
        @hookimpl
        def headrace_storage_backends(self) -> list[StorageBackend]:
            return [StorageBackend(name="temp", implementation="a:b")]

    plugin = Store()
    manager = plugin_manager_with(plugin)
    assert [r.name for r in manager.registrations(STORAGE)] == ["temp"]
    manager.unregister(plugin)
    assert manager.registrations(STORAGE) == []
    assert manager.collect_all() == []


def test_registering_the_same_object_twice_is_a_plugin_error() -> None:
    class Store:
        @hookimpl
        def headrace_storage_backends(self) -> list[StorageBackend]:
            return []

    plugin = Store()
    manager = plugin_manager_with(plugin)
    with pytest.raises(PluginError, match="already registered"):
        manager.register(plugin, name="again")


def test_hookimpl_may_use_specname() -> None:
    seen: list[object] = []

    class Tap:
        @hookimpl(specname="headrace_on_event")
        def record_event(self, event: object) -> None:
            seen.append(event)

    manager = plugin_manager_with(Tap())
    manager.fire("headrace_on_event", event="ping")
    assert seen == ["ping"]
    assert manager.collect_all()[0].hooks == ["headrace_on_event"]
