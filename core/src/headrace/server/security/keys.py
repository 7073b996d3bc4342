"""API key material: generation and the hash the database stores instead of the key.

Keys are 256 bits from ``secrets``; with that much entropy a single SHA-256 is the right hash (as for
GitHub or Stripe tokens): a slow password hash would only add latency to every request, since no
dictionary attack applies to random keys. The prefix makes leaked keys easy to recognise and scan for.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "hr_"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def keys_match(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(key), stored_hash)
