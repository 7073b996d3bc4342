"""Fixtures for headrace-aws: a real moto server process on loopback, and an AWS environment sealed off.

``moto_server`` (session) starts ``moto_server`` from this interpreter's ``bin`` folder on a free
127.0.0.1 port, waits until ``GET /moto-api/`` answers, points ``AWS_ENDPOINT_URL`` at it (so any client
or s3fs filesystem, in this process or a subprocess, talks to moto) and stops it at the end of the session.
``moto`` (per test) resets the server's state first and returns it.

``aws_environment`` (session, automatic) removes every ``AWS_*`` variable that could carry real
credentials, profiles or roles, points the config and credentials files at empty files, turns instance
metadata off and sets moto's dummy credentials: nothing here can reach real AWS or the internet.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REGION = "us-east-1"


@dataclass(frozen=True)
class MotoServer:
    """A running moto server: its base URL and the control calls of its ``/moto-api``."""

    url: str

    def reset(self) -> None:
        httpx.post(f"{self.url}/moto-api/reset", timeout=30).raise_for_status()

    def configure(self, config: dict[str, Any]) -> None:
        httpx.post(f"{self.url}/moto-api/config", json=config, timeout=30).raise_for_status()

    def client(self, service: str) -> Any:
        """A plain boto3 client for checking what the code under test did, straight from the server."""
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=REGION)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _moto_executable() -> Path:
    folder = Path(sys.executable).parent
    for name in ("moto_server", "moto_server.exe"):
        if (folder / name).is_file():
            return folder / name
    pytest.fail(f"moto_server not found next to {sys.executable}; install moto[server]", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def aws_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    folder = tmp_path_factory.mktemp("aws-config")
    (folder / "config").write_text("", encoding="utf-8")
    (folder / "credentials").write_text("", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.upper().startswith("AWS_"):
                patch.delenv(name)
        patch.setenv("AWS_CONFIG_FILE", str(folder / "config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "credentials"))
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        # Until a test starts moto, anything that would talk to AWS hits a closed loopback port instead.
        patch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        yield


@pytest.fixture(scope="session")
def moto_server(aws_environment: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(_moto_executable()), "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"moto_server exited with {process.returncode}:\n{log.read_text()}", pytrace=False)
            try:
                if httpx.get(f"{url}/moto-api/", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"moto_server did not answer on {url} within 60 s:\n{log.read_text()}", pytrace=False)
            time.sleep(0.1)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AWS_ENDPOINT_URL", url)
            yield MotoServer(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def moto(moto_server: MotoServer) -> MotoServer:
    """The moto server, with every service's state reset before the test."""
    moto_server.reset()
    return moto_server


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    """An empty bucket in moto."""
    name = "headrace-test"
    moto.client("s3").create_bucket(Bucket=name)
    return name
