"""Stateless CSRF tokens: ``HMAC(secret, client + expiry)``, so that any replica sharing the secret can check them.

A browser client asks ``GET /api/csrf-token?client=<id>`` and sends the token back in the
``Headrace-Csrf-Token`` header with its ``Headrace-Csrf-Client`` id on every unsafe request.
:class:`~headrace.server.security.middleware.SecurityMiddleware` does the checking.

The secret is 32 random bytes in ``HEADRACE_HOME/csrf.key`` (mode 0600), created on first use; replicas
behind one load balancer must share that file (or its content), or a token from one is refused by another.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

TOKEN_HEADER = "Headrace-Csrf-Token"
CLIENT_HEADER = "Headrace-Csrf-Client"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECRET_BYTES = 32
SECRET_FILE = "csrf.key"


class CsrfSecretError(RuntimeError):
    """The secret file exists but does not hold a secret (edited by hand, or truncated)."""


def load_or_create_secret(home: Path) -> bytes:
    """The signing secret, kept in ``HEADRACE_HOME/csrf.key`` (mode 0600), created once.

    Creation is atomic: the secret is written to a private temporary file that is then linked into
    place, so two processes starting together agree on one secret and neither reads a half-written file.
    """
    path = home / SECRET_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        temporary = home / f".{SECRET_FILE}.{secrets.token_hex(8)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(SECRET_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another process won the race: use its secret
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    text = path.read_text().strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < SECRET_BYTES:
        raise CsrfSecretError(
            f"{path} does not hold a CSRF secret ({SECRET_BYTES * 2} hex digits); delete it to have a new one made"
        )
    return secret


def issue_token(secret: bytes, client: str, lifetime: float, now: float | None = None) -> tuple[str, float]:
    """A token for ``client`` valid for ``lifetime`` seconds; returns it and its expiry (Unix time)."""
    expires = int((time.time() if now is None else now) + lifetime)
    signature = _sign(secret, client, expires)
    return f"{expires}.{signature}", float(expires)


def token_is_valid(secret: bytes, client: str, token: str, now: float | None = None) -> bool:
    """Whether ``token`` was issued for ``client`` with this secret and has not expired. Never raises."""
    expires_text, _, signature = token.partition(".")
    if not (expires_text.isascii() and expires_text.isdigit()) or not signature.isascii() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    if expires < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(signature.encode("ascii"), _sign(secret, client, expires).encode("ascii"))


def _sign(secret: bytes, client: str, expires: int) -> str:
    digest = hmac.new(secret, f"{client}\n{expires}".encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
