"""API keys (stored as hashes) and reversible encryption of secrets we must use again."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet

from patronage.config import get_settings


def new_key(prefix: str, length: int = 32) -> str:
    """Return a new random key such as `sk_live_…`."""
    return f"{prefix}{secrets.token_urlsafe(length)}"


def hash_key(key: str) -> str:
    """Return the SHA-256 hex digest a key is stored and looked up by (keys are high-entropy)."""
    return hashlib.sha256(key.encode()).hexdigest()


def hmac_sha256_base64(secret: str, body: bytes) -> str:
    """Return base64(HMAC-SHA256(secret, body)), the Shopify and WooCommerce webhook signature."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signatures_match(expected: str, given: str) -> bool:
    """Compare two signatures in constant time."""
    return hmac.compare_digest(expected.encode(), given.encode())


@lru_cache(maxsize=1)
def _fernet() -> Fernet:
    settings = get_settings()
    key = settings.secret_key
    if not key:
        path = Path(settings.secret_key_file)
        if path.exists():
            key = path.read_text().strip()
        else:
            key = Fernet.generate_key().decode()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(key)
    # Accept any string as the master secret by deriving a Fernet key from it.
    derived = base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest())
    return Fernet(derived)


def encrypt(plain: str) -> str:
    """Encrypt a secret with the installation's master key."""
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt a secret encrypted by `encrypt`."""
    return _fernet().decrypt(token.encode()).decode()
