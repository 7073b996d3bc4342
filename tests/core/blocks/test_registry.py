"""Block types through the plugin hook: built-in registrations agree with their classes; lookups by slug."""

from __future__ import annotations

from typing import ClassVar

import pytest

from headrace.blocks import Block, BlockError, Secret, UnknownBlockType
from headrace.blocks.registry import block_class_for, block_type_registrations
from headrace.plugins import hookimpl
from headrace.plugins.types import BlockType
from headrace.testing.blocks import assert_block_type_registered
from headrace.testing.plugins import plugin_manager_with

SYSTEM = {"secret", "json", "string", "date-time"}
OTHER_BUILTINS = {"local-file-system", "remote-file-system", "webhook", "apprise-notification"}


def test_builtin_registrations_are_listed() -> None:
    slugs = {registration.name for registration in block_type_registrations()}
    assert slugs >= SYSTEM | OTHER_BUILTINS


@pytest.mark.parametrize("slug", sorted(SYSTEM))
def test_builtin_system_blocks_agree_with_their_classes(slug: str) -> None:
    (registration,) = [r for r in block_type_registrations() if r.name == slug]
    block_class = assert_block_type_registered(registration)
    assert block_class.block_type_slug == slug
    assert block_class_for(slug) is block_class


def test_block_class_for_resolves_through_the_hook() -> None:
    assert block_class_for("secret") is Secret


def test_unknown_slug_lists_the_choices() -> None:
    with pytest.raises(UnknownBlockType, match=r"choose one of: .*secret"):
        block_class_for("no-such-block-type")


def test_a_class_defined_here_is_found_when_no_plugin_has_its_slug() -> None:
    class LocalOnly(Block):
        block_type_slug: ClassVar[str] = "test-local-only"
        value: int

    assert block_class_for("test-local-only") is LocalOnly


class Ftp(Block):
    """Host and login of an FTP server."""

    block_type_slug: ClassVar[str] = "ftp-server"
    host: str


def test_assert_block_type_registered_catches_disagreements() -> None:
    good = BlockType(name="ftp-server", implementation=f"{__name__}:Ftp", description=Ftp.block_description)
    assert assert_block_type_registered(good) is Ftp
    wrong_slug = BlockType(name="ftp", implementation=f"{__name__}:Ftp")
    with pytest.raises(AssertionError, match="slug is 'ftp-server'"):
        assert_block_type_registered(wrong_slug)
    stale = BlockType(name="ftp-server", implementation=f"{__name__}:Ftp", description="An old description.")
    with pytest.raises(AssertionError, match="description"):
        assert_block_type_registered(stale)
    not_a_block = BlockType(name="ftp-server", implementation="headrace.plugins.types:BlockType")
    with pytest.raises(AssertionError, match="not a Block subclass"):
        assert_block_type_registered(not_a_block)


def test_a_registration_naming_a_broken_class_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from headrace.blocks import registry

    class Broken:
        @hookimpl
        def headrace_block_types(self) -> list[BlockType]:
            return [
                BlockType(name="broken-one", implementation="no_such_module_xyz:Thing"),
                BlockType(name="not-a-block", implementation="headrace.plugins.types:BlockType"),
            ]

    manager = plugin_manager_with(Broken())
    monkeypatch.setattr("headrace.plugins.get_plugin_manager", lambda: manager)
    with pytest.raises(BlockError, match=r"'broken-one' .*could not be imported: ModuleNotFoundError"):
        registry.block_class_for("broken-one")
    with pytest.raises(BlockError, match="not a Block subclass"):
        registry.block_class_for("not-a-block")
