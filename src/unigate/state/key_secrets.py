"""Key ids, secrets and their hashes. Only the sha256 of a secret is ever stored: the secrets
are 256 random bits, so a plain (unsalted, fast) hash is as strong as a slow one here and a
lookup by hash stays an index probe."""

from __future__ import annotations

import hashlib
import secrets
import string

SECRET_PREFIX = "sk-ug-"
_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_key_id() -> str:
    return "key_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def new_team_id() -> str:
    return "team_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode(errors="surrogateescape")).hexdigest()
