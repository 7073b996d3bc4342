"""Which class a block type slug stands for: the ``headrace_block_types`` hook, resolved lazily.

Listing block types (:func:`block_type_registrations`) returns the plugins' registration objects and
imports none of the classes, so ``headrace block types`` never pays for a cloud SDK. Only
:func:`block_class_for` imports a class, the one asked for. Block classes defined in this process but
contributed by no plugin (a script's own block, a test's) are found too, after the plugins' ones.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from headrace.blocks.errors import BlockError, UnknownBlockType

if TYPE_CHECKING:
    from headrace.blocks.core import Block
    from headrace.plugins.types import BlockType

__all__ = ["block_class_for", "block_type_registrations", "remember_class"]

HOOK = "headrace_block_types"

_defined_here: weakref.WeakValueDictionary[str, type[Block]] = weakref.WeakValueDictionary()


def remember_class(block_class: type[Block]) -> None:
    """Note a block class defined in this process (``Block`` does this for every subclass)."""
    _defined_here[block_class.block_type_slug] = block_class


def block_type_registrations() -> list[BlockType]:
    """Every block type the installed plugins contribute, sorted by slug; no class is imported."""
    from headrace.plugins import get_plugin_manager
    from headrace.plugins.types import BlockType

    registrations = get_plugin_manager().registrations(HOOK)
    return sorted((r for r in registrations if isinstance(r, BlockType)), key=lambda r: r.name)


def block_class_for(slug: str) -> type[Block]:
    """The block class for ``slug``: the plugin's (imported now), else one defined in this process."""
    from headrace.blocks.core import Block
    from headrace.plugins import get_plugin_manager
    from headrace.plugins.errors import PluginConflictError, UnknownPluginName

    try:
        registration = get_plugin_manager().select(HOOK, slug)
    except UnknownPluginName as exc:
        local = _defined_here.get(slug)
        if local is not None:
            return local
        raise UnknownBlockType(str(exc)) from None
    except PluginConflictError as exc:
        raise BlockError(str(exc)) from None
    try:
        block_class: Any = registration.load()
    except Exception as exc:  # an import error in the plugin: say which type and where
        raise BlockError(
            f"block type {slug!r} ({registration.implementation}) could not be imported: {type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(block_class, type) and issubclass(block_class, Block)):
        raise BlockError(f"block type {slug!r} names {registration.implementation}, which is not a Block subclass")
    if block_class.block_type_slug != slug:
        raise BlockError(
            f"block type {slug!r} names {registration.implementation}, whose slug is {block_class.block_type_slug!r}"
        )
    return block_class
