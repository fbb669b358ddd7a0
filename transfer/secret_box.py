"""Stored partner secrets: encrypted with Fernet under a key derived from the service's secret key.

Signing secrets must be usable (we sign with them and verify with the partner's), so they are encrypted,
not hashed. Only the last four characters are ever shown back.

>>> box = SecretBox("a service key")
>>> box.decrypt(box.encrypt("whsec_abc"))
'whsec_abc'
>>> last4("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
'LaSw'
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from common.errors import PrmError


class SecretUnreadable(PrmError):
    """A stored secret that the current PRM_SECRET_KEY cannot decrypt (the key changed)."""

    code, status, title = "secret-unreadable", 500, "Stored secret unreadable"


class SecretBox:
    def __init__(self, service_key: str) -> None:
        digest = hashlib.sha256(b"prm transfer secrets\0" + service_key.encode("utf-8")).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretUnreadable(
                "a stored partner secret cannot be decrypted with PRM_SECRET_KEY"
            ) from None


def last4(secret: str) -> str:
    return secret[-4:]
