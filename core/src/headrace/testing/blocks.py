"""Checks a plugin's tests run on the block types it contributes.

``assert_block_type_registered(registration)`` imports the class a ``BlockType`` registration names and
checks that the two agree: the registration's ``name`` is the class's slug, and its description,
documentation URL, code example and logo URL (those it sets) are the class's. Listings show the
registration without importing the class, so a disagreement would show users stale text.
It also builds the class's block type and schema, as saving one would.

::

    from headrace.testing.blocks import assert_block_type_registered
    from headrace.testing.plugins import plugin_manager_with
    from my_plugin import plugin

    def test_block_types_agree_with_their_classes() -> None:
        for registration in plugin_manager_with(plugin).registrations("headrace_block_types"):
            assert_block_type_registered(registration)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headrace.blocks import Block
    from headrace.plugins.types import BlockType, Registration

__all__ = ["assert_block_type_registered"]


def assert_block_type_registered(registration: BlockType | Registration) -> type[Block]:
    """Fail with a precise message unless ``registration`` and the class it names agree; return the class."""
    from headrace.blocks import Block
    from headrace.blocks.schema import block_schema_create, block_type_create
    from headrace.plugins.types import BlockType

    assert isinstance(registration, BlockType), f"{registration!r} is not a BlockType registration"
    block_class: Any = registration.load()
    where = f"block type {registration.name!r} ({registration.implementation})"
    assert isinstance(block_class, type), f"{where} names {block_class!r}, not a class"
    assert issubclass(block_class, Block), f"{where} names {block_class.__qualname__}, not a Block subclass"
    assert block_class.block_type_slug == registration.name, (
        f"{where}: the registration's name is {registration.name!r} but the class's slug is "
        f"{block_class.block_type_slug!r}; set block_type_slug on the class or rename the registration"
    )
    pairs = [
        ("description", registration.description, block_class.block_description),
        ("documentation_url", registration.documentation_url, block_class.block_documentation_url),
        ("code_example", registration.code_example, block_class.block_code_example),
        ("logo_url", registration.logo_url, block_class.block_logo_url),
    ]
    for field, registered, declared in pairs:
        if registered:
            assert registered == declared, (
                f"{where}: the registration's {field} is {registered!r} but the class says {declared!r}"
            )
    block_type_create(block_class)  # both validate: a bad slug or secret path fails here, not at save time
    block_schema_create(block_class)
    return block_class
