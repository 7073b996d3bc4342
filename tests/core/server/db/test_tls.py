"""TLS and mutual TLS to PostgreSQL, against a throwaway cluster that accepts only client certificates.

The cluster is started from the PostgreSQL binaries (``initdb``/``pg_ctl``) on a free loopback port, with
a CA, server and client certificates made by ``openssl``; it is skipped, with the reason, when either is
missing. Its pg_hba.conf has one line, ``hostssl all all 127.0.0.1/32 cert``: no TLS, or TLS without a
client certificate signed by the CA, is refused.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from headrace.server.db import Database, DatabaseConfigError
from headrace.server.db.engine import tls_context
from headrace.settings import Settings

SERVER_NAME = "db.headrace.test"


def _run(*args: str, cwd: Path, user: str | None = None) -> None:
    command = ["runuser", "-u", user, "--", *args] if user else list(args)
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")


def _make_certificates(folder: Path) -> None:
    """A CA; a server certificate for SERVER_NAME; a client certificate for user ``postgres``; a stranger CA."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "stranger-ca"):
        _run("openssl", "req", "-x509", *key, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2",
             "-subj", f"/CN=headrace test {ca}", cwd=folder)  # fmt: skip
    (folder / "server.ext").write_text(f"subjectAltName = DNS:{SERVER_NAME}\n")
    for name, subject in (("server", f"/CN={SERVER_NAME}"), ("client", "/CN=postgres")):
        _run("openssl", "req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=folder)
        extra = ["-extfile", "server.ext"] if name == "server" else []
        _run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", *extra, cwd=folder)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class TlsCluster:
    port: int
    certs: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture(scope="module")
def tls_cluster() -> Iterator[TlsCluster]:
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = binaries[-1] if binaries else shutil.which("initdb")
    if initdb is None or shutil.which("openssl") is None:
        pytest.skip("needs the PostgreSQL server binaries (initdb, pg_ctl) and openssl")
    pg_ctl = str(Path(initdb).with_name("pg_ctl"))
    user = "postgres" if os.geteuid() == 0 else None  # initdb refuses to run as root
    if user is not None and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as its own user")

    # Not under pytest's temporary folder: that one is private to this user, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="headrace-tls-"))
    certs = root / "certs"
    certs.mkdir()
    _make_certificates(certs)
    if user is not None:
        shutil.chown(root, user)
        for path in (certs, *certs.iterdir()):
            shutil.chown(path, user)
    (certs / "server.key").chmod(0o600)
    (certs / "client.key").chmod(0o600)

    data = root / "data"
    _run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
         cwd=root, user=user)  # fmt: skip
    (data / "pg_hba.conf").write_text("hostssl all all 127.0.0.1/32 cert\n")
    port = _free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off -c ssl=on "
        f"-c ssl_cert_file={certs / 'server.crt'} -c ssl_key_file={certs / 'server.key'} "
        f"-c ssl_ca_file={certs / 'ca.crt'}"
    )
    try:
        _run(pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o", options, "start", cwd=root, user=user)
        try:
            yield TlsCluster(port=port, certs=certs)
        finally:
            _run(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop", cwd=root, user=user)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _tls_settings(settings_for: Callable[..., Settings], cluster: TlsCluster, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "server_database_tls_enabled": True,
        "server_database_tls_ca_file": cluster.certs / "ca.crt",
        "server_database_tls_cert_file": cluster.certs / "client.crt",
        "server_database_tls_key_file": cluster.certs / "client.key",
        "server_database_tls_check_hostname": False,
        "server_database_connection_timeout": 30,
    }
    values.update(overrides)
    return settings_for(cluster.url, **values)


async def _ssl_status(settings: Settings) -> tuple[Any, ...]:
    async with Database.from_settings(settings) as database, database.read() as session:
        row = (
            await session.execute(sa.text("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
        ).one()
    return tuple(row)


def test_mutual_tls_connects_with_the_client_certificate(
    tls_cluster: TlsCluster, settings_for: Callable[..., Settings]
) -> None:
    assert asyncio.run(_ssl_status(_tls_settings(settings_for, tls_cluster))) == (True, "/CN=postgres")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"server_database_tls_enabled": False, "server_database_tls_ca_file": None,
          "server_database_tls_cert_file": None, "server_database_tls_key_file": None}, "no encryption"),
        ({"server_database_tls_cert_file": None, "server_database_tls_key_file": None},
         "connection requires a valid client certificate"),
        ({"server_database_tls_ca_file": "stranger-ca.crt"}, "self-signed certificate in certificate chain"),
        ({"server_database_tls_check_hostname": True}, "certificate is not valid for '127.0.0.1'"),
    ],
    ids=["no-tls", "no-client-certificate", "untrusted-server", "wrong-host-name"],
)  # fmt: skip
def test_connections_that_must_fail_do(
    tls_cluster: TlsCluster, settings_for: Callable[..., Settings], overrides: dict[str, Any], error: str
) -> None:
    if overrides.get("server_database_tls_ca_file") == "stranger-ca.crt":
        overrides = {**overrides, "server_database_tls_ca_file": tls_cluster.certs / "stranger-ca.crt"}
    settings = _tls_settings(settings_for, tls_cluster, **overrides)
    with pytest.raises((sa.exc.DBAPIError, OSError)) as caught:
        asyncio.run(_ssl_status(settings))
    assert error in str(caught.value)


def test_host_name_checking_passes_for_the_right_name(
    tls_cluster: TlsCluster, settings_for: Callable[..., Settings]
) -> None:
    context = tls_context(_tls_settings(settings_for, tls_cluster, server_database_tls_check_hostname=True))
    assert context is not None
    assert context.check_hostname
    with socket.create_connection(("127.0.0.1", tls_cluster.port), timeout=30) as raw:
        raw.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # PostgreSQL's SSLRequest
        assert raw.recv(1) == b"S"
        with context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls:
            assert tls.getpeercert() is not None


# ------------------------------------------------------------------------------- settings mistakes


def test_tls_files_without_tls_enabled_are_an_error(settings_for: Callable[..., Settings], tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    with pytest.raises(DatabaseConfigError, match="TLS_CA_FILE set but HEADRACE_SERVER_DATABASE_TLS_ENABLED is false"):
        tls_context(settings_for(None, server_database_tls_ca_file=ca))


def test_a_key_without_its_certificate_is_an_error(settings_for: Callable[..., Settings], tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    key.write_text("x")
    settings = settings_for(None, server_database_tls_enabled=True, server_database_tls_key_file=key)
    with pytest.raises(DatabaseConfigError, match="KEY_FILE is set without HEADRACE_SERVER_DATABASE_TLS_CERT_FILE"):
        tls_context(settings)


def test_missing_and_unreadable_files_are_named(settings_for: Callable[..., Settings], tmp_path: Path) -> None:
    missing = tmp_path / "nope.crt"
    settings = settings_for(None, server_database_tls_enabled=True, server_database_tls_ca_file=missing)
    with pytest.raises(DatabaseConfigError, match=f"TLS_CA_FILE={missing}: no such file"):
        tls_context(settings)
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate")
    settings = settings_for(None, server_database_tls_enabled=True, server_database_tls_cert_file=garbage)
    with pytest.raises(DatabaseConfigError, match="cannot use the database TLS files"):
        tls_context(settings)


def test_tls_on_with_system_trust_only(settings_for: Callable[..., Settings]) -> None:
    context = tls_context(settings_for(None, server_database_tls_enabled=True))
    assert context is not None
    assert context.check_hostname
    assert context.verify_mode.name == "CERT_REQUIRED"
