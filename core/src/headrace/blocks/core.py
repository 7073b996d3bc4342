"""``Block``: the base class of every block type, a pydantic model that is saved and loaded by name.

A block class declares its fields as any pydantic model does, and describes itself with class
variables, each with a default worked out from the class:

=========================  ==========================================================  ==================
class variable             meaning                                                     default
=========================  ==========================================================  ==================
``block_type_slug``        the type's identifier (lower-case letters, digits, dashes)   kebab-case class name
``block_type_name``        the display name                                            class name in words
``block_description``      what the type is for                                        docstring's 1st paragraph
``block_documentation_url`` where to read more                                         ``None``
``block_code_example``     how to load and use one                                     a ``load`` line
``block_logo_url``         an image for the dashboard                                  ``None``
``block_capabilities``     what it can do, e.g. ``("read-path", "write-path")``        ``()``
``block_schema_version``   the version of the distribution that ships the class        found from the module
=========================  ==========================================================  ==================

Secret fields are ``SecretStr``, ``SecretBytes`` or :class:`~headrace.blocks.SecretDict`; a field typed as
another ``Block`` subclass is stored by reference. See ``docs/blocks.md``.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from headrace.blocks.secrets import INCLUDE_SECRETS, include_secrets

__all__ = ["Block"]

B = TypeVar("B", bound="Block")

_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def kebab_case(name: str) -> str:
    """``LocalFileSystem`` → ``local-file-system``; ``S3Bucket`` → ``s3-bucket``; ``JSON`` → ``json``."""
    return _WORD_BOUNDARY.sub("-", name).replace("_", "-").lower().strip("-")


def _words(name: str) -> str:
    return _WORD_BOUNDARY.sub(" ", name).replace("_", " ").strip()


def _first_paragraph(docstring: str | None) -> str:
    if not docstring:
        return ""
    return " ".join(inspect.cleandoc(docstring).split("\n\n", 1)[0].split())


def _distribution_version(module: str) -> str | None:
    """The version of the installed distribution that provides ``module`` (``None`` when unknown)."""
    from importlib import metadata

    top = module.partition(".")[0]
    if top == "headrace":
        from headrace import __version__

        return __version__
    try:
        names = metadata.packages_distributions().get(top) or [top.replace("_", "-")]
        return metadata.version(names[0])
    except (metadata.PackageNotFoundError, ValueError):
        return None


class Block(BaseModel):
    """Base of every block type: typed configuration that is saved on the server and loaded by name.

    ::

        class Warehouse(Block):
            host: str
            password: SecretStr

        Warehouse(host="db.internal", password="s3cret").save("prod")
        Warehouse.load("prod").host  # 'db.internal'
    """

    model_config = ConfigDict(validate_assignment=True)

    block_type_slug: ClassVar[str] = "block"
    block_type_name: ClassVar[str] = "Block"
    block_description: ClassVar[str] = ""
    block_documentation_url: ClassVar[str | None] = None
    block_code_example: ClassVar[str | None] = None
    block_logo_url: ClassVar[str | None] = None
    block_capabilities: ClassVar[tuple[str, ...]] = ()
    block_schema_version: ClassVar[str | None] = None

    _block_document_id: UUID | None = PrivateAttr(default=None)
    _block_document_name: str | None = PrivateAttr(default=None)
    _block_is_anonymous: bool = PrivateAttr(default=False)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        own = cls.__dict__
        if "block_type_slug" not in own:
            cls.block_type_slug = kebab_case(cls.__name__)
        if "block_type_name" not in own:
            cls.block_type_name = _words(cls.__name__)
        if "block_description" not in own:
            cls.block_description = _first_paragraph(own.get("__doc__"))
        if "block_code_example" not in own:
            cls.block_code_example = (
                f"from {cls.__module__} import {cls.__qualname__}\n\n"
                f'block = {cls.__qualname__}.load("my-{cls.block_type_slug}")'
            )
        if "block_schema_version" not in own:
            cls.block_schema_version = _distribution_version(cls.__module__)
        from headrace.blocks.registry import remember_class

        remember_class(cls)

    # -- serialization ---------------------------------------------------------------------------

    @model_serializer(mode="wrap")
    def _serialize_with_secrets(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        """pydantic's dump; with ``context={"include_secrets": True}`` in JSON mode, secrets in clear."""
        dumped = handler(self)
        if info.mode_is_json() and include_secrets(info.context):
            from headrace.blocks.serialization import reveal_secrets

            return reveal_secrets(self, dumped)
        return dumped

    def model_dump_with_secrets(self) -> dict[str, Any]:
        """The JSON form of the block with every secret value in clear (handle with care)."""
        data: dict[str, Any] = self.model_dump(mode="json", context={INCLUDE_SECRETS: True})
        return data

    # -- identity ----------------------------------------------------------------------------------

    @property
    def block_document_id(self) -> UUID | None:
        """The id of the document this block was loaded from or saved as (``None`` if never saved)."""
        return self._block_document_id

    @property
    def block_document_name(self) -> str | None:
        """The name this block was loaded from or saved under (``None`` if never saved)."""
        return self._block_document_name

    def __eq__(self, other: object) -> bool:
        """Equal when of the same class with equal fields; where a block was saved or loaded does not count."""
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable, like every pydantic model that is not frozen

    def _attach_document(self, document_id: UUID, name: str, is_anonymous: bool) -> None:
        self._block_document_id = document_id
        self._block_document_name = name
        self._block_is_anonymous = is_anonymous

    # -- the schema --------------------------------------------------------------------------------

    @classmethod
    def secret_fields(cls) -> list[str]:
        """The dotted paths of this class's secret leaves (``"*"`` for every key of a ``SecretDict``)."""
        from headrace.blocks.schema import secret_field_paths

        return secret_field_paths(cls)

    # -- saving, loading, deleting -----------------------------------------------------------------

    def save(self, name: str, overwrite: bool = False) -> UUID:
        """Save this block under ``name``; returns the document id. See :meth:`asave`."""
        from headrace.blocks.api import run_blocking

        return run_blocking(self._save_on_loop, name, overwrite)

    async def asave(self, name: str, overwrite: bool = False) -> UUID:
        """Save this block under ``name`` (nested blocks not saved yet are saved first, anonymously).

        Raises :class:`~headrace.blocks.BlockAlreadyExists` when the name is taken, unless ``overwrite``
        is true: then the saved document is updated in place and keeps its id.
        """
        from headrace.blocks.api import run_awaitable

        return await run_awaitable(self._save_on_loop, name, overwrite)

    async def _save_on_loop(self, client: Any, name: str, overwrite: bool) -> UUID:
        from headrace.blocks.documents import save_block

        return await save_block(client, self, name, overwrite=overwrite)

    @classmethod
    def load(cls: type[B], name: str) -> B:
        """Load the block saved under ``name``. See :meth:`aload`."""
        from headrace.blocks.api import run_blocking
        from headrace.blocks.cache import cached_block, current_flow_run_id, remember_block

        block_class, slug, plain_name = cls._resolve(name)
        run_id = current_flow_run_id()
        block = cached_block(run_id, slug, plain_name)
        if block is None:
            block = run_blocking(_load_on_loop, block_class, plain_name)
            remember_block(run_id, slug, plain_name, block)
        return block  # type: ignore[return-value]  # an instance of cls, or of the class "slug/" names

    @classmethod
    async def aload(cls: type[B], name: str) -> B:
        """Load the block of this class saved under ``name``.

        On the base class, ``Block.load("type-slug/name")`` finds the class through the
        ``headrace_block_types`` hook. Inside a flow run a block already loaded by the run is returned
        again (a copy) without asking the server. Errors: :class:`~headrace.blocks.BlockNotFound`,
        :class:`~headrace.blocks.BlockTypeMismatch`, :class:`~headrace.blocks.BlockInvalid`,
        :class:`~headrace.blocks.BlockSecretsForbidden`.
        """
        from headrace.blocks.api import run_awaitable
        from headrace.blocks.cache import cached_block, current_flow_run_id, remember_block

        block_class, slug, plain_name = cls._resolve(name)
        run_id = current_flow_run_id()
        block = cached_block(run_id, slug, plain_name)
        if block is None:
            block = await run_awaitable(_load_on_loop, block_class, plain_name)
            remember_block(run_id, slug, plain_name, block)
        return block  # type: ignore[return-value]  # an instance of cls, or of the class "slug/" names

    @classmethod
    def delete(cls, name: str) -> None:
        """Delete the block saved under ``name``. See :meth:`adelete`."""
        from headrace.blocks.api import run_blocking

        _, slug, plain_name = cls._resolve(name, need_class=False)
        run_blocking(_delete_on_loop, slug, plain_name)

    @classmethod
    async def adelete(cls, name: str) -> None:
        """Delete the block of this class saved under ``name`` (``"type-slug/name"`` on the base class).

        A block that other blocks refer to cannot be deleted: the error names them.
        """
        from headrace.blocks.api import run_awaitable

        _, slug, plain_name = cls._resolve(name, need_class=False)
        await run_awaitable(_delete_on_loop, slug, plain_name)

    @classmethod
    def _resolve(cls, name: str, need_class: bool = True) -> tuple[type[Block], str, str]:
        """(class, slug, name) for ``name`` or ``"slug/name"``; checks that the slug fits the class."""
        from headrace.blocks.errors import BlockError, BlockTypeMismatch

        if not isinstance(name, str) or not name:
            raise BlockError(f"a block name is a non-empty string, not {name!r}")
        slug, sep, plain = name.rpartition("/")
        if not sep:
            if cls is Block:
                raise BlockError(
                    f"Block.load needs 'type-slug/name' (such as 'secret/{name}'), "
                    "or call load on the block's own class"
                )
            return cls, cls.block_type_slug, name
        if cls is not Block:
            if slug != cls.block_type_slug:
                raise BlockTypeMismatch(
                    plain, cls.block_type_slug, slug, f"load it with Block.load({name!r}) or the class for {slug!r}"
                )
            return cls, slug, plain
        if not need_class:
            return cls, slug, plain
        from headrace.blocks.registry import block_class_for

        return block_class_for(slug), slug, plain


async def _load_on_loop(client: Any, block_class: type[Block], name: str) -> Block:
    from headrace.blocks.documents import load_block

    return await load_block(client, block_class, name)


async def _delete_on_loop(client: Any, slug: str, name: str) -> None:
    from headrace.blocks.documents import delete_block

    await delete_block(client, slug, name)
