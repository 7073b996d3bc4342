"""The block-secret key: where it comes from, how it is kept, rotation (service and CLI), and wrong keys.

Rotation and wrong-key tests run on SQLite and PostgreSQL (the ``database_url`` fixture)."""

from __future__ import annotations

import asyncio
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from headrace.schemas.blocks import OBFUSCATED, BlockDocumentCreate, BlockSchemaCreate, BlockTypeCreate
from headrace.server.db import Database, models
from headrace.server.errors import Problem
from headrace.server.operations import blocks
from headrace.server.security.encryption import (
    KEY_FILE,
    BlockCipher,
    EncryptionKeyError,
    generate_key,
    read_key_file,
)
from headrace.settings import Settings

SECRET = "s3cr3t-value-for-rotation"


def _document(name: str, token: str = SECRET) -> BlockDocumentCreate:
    return BlockDocumentCreate(
        name=name,
        block_type=BlockTypeCreate(slug="api-credentials", name="API credentials"),
        block_schema=BlockSchemaCreate(
            block_type_slug="api-credentials", fields={"title": "ApiCredentials"}, secret_fields=["token"]
        ),
        data={"user": "me", "token": token},
    )


def _save(settings: Settings, *names: str) -> list[Any]:
    async def save() -> list[Any]:
        cipher = BlockCipher(settings)
        async with Database.from_settings(settings) as database:
            return [await blocks.create_block_document(database, cipher, _document(name)) for name in names]

    return asyncio.run(save())


def _read_secret(settings: Settings, document_id: Any) -> Any:
    async def read() -> Any:
        async with Database.from_settings(settings) as database:
            found = await blocks.read_block_document(database, BlockCipher(settings), document_id, include_secrets=True)
            return found.data["token"]

    return asyncio.run(read())


def _tokens(settings: Settings) -> list[bytes]:
    async def read() -> list[bytes]:
        async with Database.from_settings(settings) as database, database.read() as session:
            rows = await session.scalars(
                sa.select(models.BlockDocument.encrypted_secrets).where(
                    models.BlockDocument.encrypted_secrets.is_not(None)
                )
            )
            return [bytes(row) for row in rows.all() if row is not None]

    return asyncio.run(read())


# -------------------------------------------------------------------------------------- the key file


def test_the_key_file_is_created_once_with_mode_0600(settings_for: Callable[..., Settings], tmp_path: Path) -> None:
    settings = settings_for(None)
    path = settings.home / KEY_FILE
    ciphers = [BlockCipher(settings) for _ in range(8)]
    assert not path.exists()  # made on first use, not when the cipher is
    tokens: list[bytes] = []
    threads = [threading.Thread(target=lambda c=c: tokens.append(c.encrypt({"a": 1}))) for c in ciphers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = read_key_file(path)
    assert len(keys) == 1
    for token in tokens:  # every racer used the one key that won
        assert Fernet(keys[0]).decrypt(token) == b'{"a":1}'
    assert [p.name for p in settings.home.iterdir() if p.name.startswith(".encryption")] == []
    before = path.read_text()
    BlockCipher(settings).encrypt("again")
    assert path.read_text() == before


def test_a_key_file_open_to_others_is_refused(settings_for: Callable[..., Settings]) -> None:
    settings = settings_for(None)
    cipher = BlockCipher(settings)
    cipher.encrypt("x")
    path = settings.home / KEY_FILE
    path.chmod(0o644)
    with pytest.raises(EncryptionKeyError, match=r"open to other users \(mode 644\).*chmod 600"):
        BlockCipher(settings).encrypt("x")


def test_a_malformed_key_file_is_a_clear_error(settings_for: Callable[..., Settings]) -> None:
    settings = settings_for(None)
    settings.home.mkdir(parents=True, exist_ok=True)
    path = settings.home / KEY_FILE
    path.write_text("not a key\n")
    path.chmod(0o600)
    with pytest.raises(EncryptionKeyError, match=r"invalid encryption key.*generate-key"):
        BlockCipher(settings).encrypt("x")


def test_the_environment_key_wins_over_the_key_file(settings_for: Callable[..., Settings]) -> None:
    file_settings = settings_for(None)
    BlockCipher(file_settings).encrypt("made the file")
    file_key = read_key_file(file_settings.home / KEY_FILE)[0]
    key = generate_key()
    settings = settings_for(None, server_encryption_key=key)
    token = BlockCipher(settings).encrypt({"secret": 1})
    assert Fernet(key).decrypt(token) == b'{"secret":1}'
    with pytest.raises(InvalidToken):
        Fernet(file_key).decrypt(token)
    # A list decrypts under every key and encrypts under the first.
    old_token = Fernet(file_key).encrypt(b'"old"')
    both = BlockCipher(settings_for(None, server_encryption_key=f"{key},{file_key}"))
    assert both.decrypt(old_token) == "old"
    assert Fernet(key).decrypt(both.encrypt("new")) == b'"new"'


def test_a_malformed_environment_key_is_a_clear_error(settings_for: Callable[..., Settings]) -> None:
    with pytest.raises(EncryptionKeyError, match=r"HEADRACE_SERVER_ENCRYPTION_KEY holds an invalid encryption key"):
        BlockCipher(settings_for(None, server_encryption_key="short"))


def test_a_running_cipher_follows_a_replaced_key_file(settings_for: Callable[..., Settings]) -> None:
    settings = settings_for(None)
    cipher = BlockCipher(settings)
    first = cipher.encrypt("x")
    from headrace.server.security.encryption import write_key_file

    new = generate_key()
    write_key_file(settings.home / KEY_FILE, [new, *read_key_file(settings.home / KEY_FILE)])
    assert Fernet(new).decrypt(cipher.encrypt("y")) == b'"y"'
    assert cipher.decrypt(first) == "x"


# ------------------------------------------------------------------------------------------ rotation


def test_rotation_reencrypts_and_the_old_key_no_longer_decrypts(server_settings: Settings) -> None:
    documents = _save(server_settings, "one", "two")
    path = server_settings.home / KEY_FILE
    old_key = read_key_file(path)[0]
    for token in _tokens(server_settings):
        Fernet(old_key).decrypt(token)

    async def rotate() -> blocks.RotationReport:
        async with Database.from_settings(server_settings) as database:
            return await blocks.rotate_encryption_key(database, server_settings, None)

    report = asyncio.run(rotate())
    assert report.documents == 2
    new_keys = read_key_file(path)
    assert len(new_keys) == 1
    assert new_keys[0] != old_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    tokens = _tokens(server_settings)
    assert len(tokens) == 2
    for token in tokens:
        with pytest.raises(InvalidToken):
            Fernet(old_key).decrypt(token)
        Fernet(new_keys[0]).decrypt(token)
    assert [_read_secret(server_settings, d.id) for d in documents] == [SECRET, SECRET]


def test_rotation_with_an_environment_key_needs_the_new_key(
    server_settings: Settings, settings_for: Callable[..., Settings], database_url: str
) -> None:
    old, new = generate_key(), generate_key()
    env_settings = settings_for(database_url, server_encryption_key=old)
    (document,) = _save(env_settings, "one")

    async def rotate(settings: Settings, new_key: str | None) -> blocks.RotationReport:
        async with Database.from_settings(settings) as database:
            return await blocks.rotate_encryption_key(database, settings, new_key)

    with pytest.raises(EncryptionKeyError, match="pass --new-key"):
        asyncio.run(rotate(env_settings, None))
    report = asyncio.run(rotate(env_settings, new))
    assert report.documents == 1
    assert report.next_step is not None
    assert "HEADRACE_SERVER_ENCRYPTION_KEY" in report.next_step
    assert not (env_settings.home / KEY_FILE).exists()
    (token,) = _tokens(env_settings)
    with pytest.raises(InvalidToken):
        Fernet(old).decrypt(token)
    assert _read_secret(settings_for(database_url, server_encryption_key=new), document.id) == SECRET

    # 'NEW,OLD' in the environment: rotate without --new-key re-encrypts under the first.
    newer = generate_key()
    listed = settings_for(database_url, server_encryption_key=f"{newer},{new}")
    assert asyncio.run(rotate(listed, None)).documents == 1
    Fernet(newer).decrypt(_tokens(env_settings)[0])


# ------------------------------------------------------------------------------------------ wrong keys


def test_a_wrong_key_is_a_clear_problem_not_a_traceback(
    server_settings: Settings, settings_for: Callable[..., Settings], database_url: str
) -> None:
    (document,) = _save(server_settings, "one")
    wrong = settings_for(database_url, server_encryption_key=generate_key())

    async def read(settings: Settings, include_secrets: bool) -> Any:
        async with Database.from_settings(settings) as database:
            return await blocks.read_block_document(
                database, BlockCipher(settings), document.id, include_secrets=include_secrets
            )

    # Without secrets nothing needs decrypting.
    assert asyncio.run(read(wrong, False)).data["token"] == OBFUSCATED
    with pytest.raises(Problem) as caught:
        asyncio.run(read(wrong, True))
    assert caught.value.status == 500
    assert caught.value.kind == "encryption-key-error"
    assert "cannot be decrypted with the key from HEADRACE_SERVER_ENCRYPTION_KEY" in caught.value.detail

    # Rotating with the wrong key changes nothing.
    async def rotate() -> Any:
        async with Database.from_settings(wrong) as database:
            return await blocks.rotate_encryption_key(database, wrong, generate_key())

    before = _tokens(server_settings)
    with pytest.raises(EncryptionKeyError, match="nothing was changed"):
        asyncio.run(rotate())
    assert _tokens(server_settings) == before


def test_a_lost_key_file_is_not_silently_replaced(server_settings: Settings) -> None:
    _save(server_settings, "one")
    (server_settings.home / KEY_FILE).unlink()

    with pytest.raises(Problem, match="restore the key"):
        _save(server_settings, "two")
    assert not (server_settings.home / KEY_FILE).exists()


# ------------------------------------------------------------------------------------------------- CLI


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("headrace")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "headrace.cli.main"]
    return subprocess.run(
        [*command, "server", "encryption", *args],
        capture_output=True,
        text=True,
        env={**env, "NO_COLOR": "1", "COLUMNS": "200"},
        timeout=120,
        check=False,
    )


def test_the_rotate_command(server_settings: Settings, database_url: str, clean_environ: dict[str, str]) -> None:
    (document,) = _save(server_settings, "one")
    path = server_settings.home / KEY_FILE
    old_key = read_key_file(path)[0]
    env = {
        **clean_environ,
        "HEADRACE_HOME": str(server_settings.home),
        "HEADRACE_SERVER_DATABASE_CONNECTION_URL": database_url,
    }
    done = _cli("rotate", env=env)
    assert done.returncode == 0, done.stderr
    assert "Re-encrypted the secrets of 1 block document(s)" in done.stdout
    assert old_key not in done.stdout + done.stderr
    (new_key,) = read_key_file(path)
    assert new_key != old_key
    assert new_key not in done.stdout  # the key stays in its file
    with pytest.raises(InvalidToken):
        Fernet(old_key).decrypt(_tokens(server_settings)[0])
    assert _read_secret(server_settings, document.id) == SECRET

    # Mistakes are one line, no traceback.
    bad = _cli("rotate", "--new-key", "nonsense", env=env)
    assert bad.returncode == 1
    assert "--new-key holds an invalid encryption key" in bad.stderr
    assert "Traceback" not in bad.stderr
    env_single = {**env, "HEADRACE_SERVER_ENCRYPTION_KEY": generate_key()}
    refused = _cli("rotate", env=env_single)
    assert refused.returncode == 1
    assert "pass --new-key" in refused.stderr
    assert "Traceback" not in refused.stderr
    wrong = _cli("rotate", "--new-key", generate_key(), env=env_single)
    assert wrong.returncode == 1
    assert "nothing was changed" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    generated = _cli("generate-key", env=env)
    assert generated.returncode == 0
    Fernet(generated.stdout.strip())
