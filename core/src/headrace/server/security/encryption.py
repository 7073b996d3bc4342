"""The key that encrypts block secrets at rest, and where it comes from.

The key is never in the database it protects, so a stolen database (or a backup of it) reveals no
secret. It comes from one of two places, in this order:

1. ``HEADRACE_SERVER_ENCRYPTION_KEY``: one Fernet key, or several separated by commas. The first one
   encrypts; every one of them decrypts (so ``NEW,OLD`` lets servers read documents under either key
   while a rotation runs).
2. The key file ``HEADRACE_HOME/encryption.key``: the same format, one key per line. It is created once,
   atomically (a private temporary file linked into place, so two processes starting together agree on
   one key), with mode 0600; a key file that other users may read is refused.

:class:`BlockCipher` encrypts and decrypts a document's secrets with those keys (Fernet: AES-128-CBC with
an HMAC-SHA256, so a wrong key is detected, never silently producing garbage). It re-reads the key file
when the file changes, so a running server follows a rotation made by ``headrace server encryption
rotate`` in another process without a restart.

``cryptography`` is imported by the functions that use it, not here: the server imports this module
while it starts, and most servers never touch a secret (the import is ~5 ms of start-up).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headrace.settings import Settings

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "KEY_FILE",
    "BlockCipher",
    "EncryptionKeyError",
    "KeySource",
    "create_key_file",
    "generate_key",
    "key_file_path",
    "key_source",
    "parse_keys",
    "read_key_file",
    "write_key_file",
]

ENVIRONMENT_VARIABLE = "HEADRACE_SERVER_ENCRYPTION_KEY"
KEY_FILE = "encryption.key"
_HOW_TO_MAKE_ONE = "make one with `headrace server encryption generate-key`"


class EncryptionKeyError(RuntimeError):
    """The encryption key is missing, malformed, too widely readable, or not the one the data needs."""


@dataclass(frozen=True)
class KeySource:
    """Where the keys come from: the environment (``path`` is None) or a key file."""

    path: Path | None

    @property
    def from_environment(self) -> bool:
        return self.path is None

    def __str__(self) -> str:
        return ENVIRONMENT_VARIABLE if self.path is None else f"the key file {self.path}"


def generate_key() -> str:
    """A new random Fernet key (32 bytes, url-safe base64)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


def key_file_path(home: Path) -> Path:
    return home / KEY_FILE


def key_source(settings: Settings) -> KeySource:
    """The environment when ``HEADRACE_SERVER_ENCRYPTION_KEY`` is set, else the key file under the home."""
    if settings.server_encryption_key is not None:
        return KeySource(path=None)
    return KeySource(path=key_file_path(settings.home))


def parse_keys(text: str, where: str) -> list[str]:
    """The keys in ``text`` (separated by commas or new lines), each checked to be a Fernet key."""
    from cryptography.fernet import Fernet

    keys = [part.strip() for line in text.splitlines() for part in line.split(",") if part.strip()]
    if not keys:
        raise EncryptionKeyError(f"{where} holds no encryption key; {_HOW_TO_MAKE_ONE}")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise EncryptionKeyError(
                f"{where} holds an invalid encryption key (number {position}): a key is 32 url-safe "
                f"base64-encoded bytes; {_HOW_TO_MAKE_ONE}"
            ) from None
    return keys


def read_key_file(path: Path) -> list[str]:
    """The keys of a key file; refuses a file that users other than its owner may read or write."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise EncryptionKeyError(f"the key file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EncryptionKeyError(f"cannot read the key file {path}: {exc}") from None
    if os.name == "posix" and mode & 0o077:
        raise EncryptionKeyError(
            f"the key file {path} is open to other users (mode {mode & 0o777:o}): run `chmod 600 {path}`"
        )
    return parse_keys(text, f"the key file {path}")


def _write_private(path: Path, keys: Sequence[str]) -> Path:
    """Write ``keys`` to a new private temporary file beside ``path``, flushed to disk; return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write("\n".join(keys) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def create_key_file(path: Path) -> list[str]:
    """Create the key file with one new key unless it exists; return the keys it holds afterwards.

    Two processes racing here agree on one key: each links its own private file into place, and the
    loser reads the winner's.
    """
    if not path.exists():
        temporary = _write_private(path, [generate_key()])
        try:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    return read_key_file(path)


def write_key_file(path: Path, keys: Sequence[str]) -> None:
    """Replace the key file atomically (a reader sees the old keys or the new ones, never half a file)."""
    parse_keys("\n".join(keys), "the new key list")
    temporary = _write_private(path, keys)
    try:
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class BlockCipher:
    """Encrypts JSON values under the first key of the configured source; decrypts under any of its keys.

    Keys are read on first use, not when the cipher is made, so that a server whose documents hold no
    secrets never needs a key. ``create=True`` (the default) lets :meth:`encrypt` create the key file
    when it is missing; the service layer passes ``create=False`` when the database already holds
    secrets, because a new key could not decrypt them (the right answer is to restore the lost key).
    """

    def __init__(self, settings: Settings) -> None:
        self.source = key_source(settings)
        self._environment_keys = (
            None
            if settings.server_encryption_key is None
            else parse_keys(settings.server_encryption_key.get_secret_value(), ENVIRONMENT_VARIABLE)
        )
        self._lock = threading.Lock()
        self._keys: list[str] | None = None
        self._stamp: tuple[int, int, int] | None = None

    def __repr__(self) -> str:
        return f"BlockCipher(source={str(self.source)!r})"

    def has_key(self) -> bool:
        """Whether a key exists (the environment variable is set, or the key file exists)."""
        return self.source.path is None or self.source.path.exists()

    def keys(self, *, create: bool = False) -> list[str]:
        """The current keys, the encrypting one first (the key file is re-read when it changed)."""
        if self._environment_keys is not None:
            return self._environment_keys
        path = self.source.path
        assert path is not None
        with self._lock:
            stamp = _stamp(path)
            if stamp is None:
                if not create:
                    raise EncryptionKeyError(f"the key file {path} does not exist")
                self._keys = create_key_file(path)
                self._stamp = _stamp(path)
            elif self._keys is None or stamp != self._stamp:
                self._keys, self._stamp = read_key_file(path), stamp
            return list(self._keys)

    def encrypt(self, value: Any, *, create: bool = True) -> bytes:
        """A Fernet token of the JSON of ``value``, under the first key."""
        from cryptography.fernet import Fernet

        key = self.keys(create=create)[0]
        return Fernet(key).encrypt(json.dumps(value, separators=(",", ":")).encode("utf-8"))

    def decrypt(self, token: bytes) -> Any:
        """The value in ``token``; :class:`EncryptionKeyError` when no configured key opens it."""
        from cryptography.fernet import Fernet, InvalidToken, MultiFernet

        try:
            plain = MultiFernet([Fernet(key) for key in self.keys()]).decrypt(token)
        except InvalidToken:
            raise EncryptionKeyError(
                f"the stored block secrets cannot be decrypted with the key from {self.source}: it is not the "
                "key they were encrypted with. Restore the right key (from your backup), or list the old key "
                f"after the new one in {ENVIRONMENT_VARIABLE} ('NEW,OLD')"
            ) from None
        return json.loads(plain)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_mtime_ns, status.st_size, status.st_ino
