"""Column-level encryption and blind indexes for patient data.

Every answer a patient gives is PHI. Sensitive columns use :class:`EncryptedText` or
:class:`EncryptedJSON`, which encrypt with Fernet (AES-128-CBC plus HMAC-SHA256) on the way into
the database and decrypt on the way out. Values that must be looked up (a phone number, an
email) also get a keyed HMAC "blind index" from :func:`blind_index`, so equality lookups work
without storing the plain value.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy.types import Text, TypeDecorator

from bot.settings import get_settings


@lru_cache(maxsize=4)
def _fernet(key: str) -> Fernet:
    return Fernet(key.encode())


def encrypt(plain: str) -> str:
    """Encrypt text with the configured data key."""
    return _fernet(get_settings().data_key).encrypt(plain.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    """Decrypt text encrypted by :func:`encrypt`."""
    return _fernet(get_settings().data_key).decrypt(token.encode("ascii")).decode("utf-8")


def blind_index(value: str) -> str:
    """A keyed, deterministic digest of ``value`` for equality lookups."""
    return hmac.new(get_settings().index_key, value.encode("utf-8"), hashlib.sha256).hexdigest()


class EncryptedText(TypeDecorator):
    """Text stored encrypted at rest."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else encrypt(str(value))

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else decrypt(value)


class EncryptedJSON(TypeDecorator):
    """A JSON document stored encrypted at rest."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else encrypt(json.dumps(value, sort_keys=True))

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else json.loads(decrypt(value))
