"""Signed click tokens: ``/ads/click?t=TOKEN`` carries the impression id and an expiry.

The token is ``base64url(json payload) . base64url(HMAC-SHA256(secret, payload))``.
The secret lives in the workspace (``ads/click_secret``, mode 0600), created on
first use, so click URLs stay valid across server restarts.

Verification is strict: each part must be canonical unpadded base64url (one
token, one spelling), and even a correctly signed payload must be the shape
``sign`` writes (an object with a string ``i`` and an integer ``e``), so a
leaked or rotated secret, or a bug, can never turn into a 500 or a token
that never expires (``e: NaN``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from roost.errors import UserError
from roost.workspace import atomic_write_bytes


class BadToken(ValueError):
    """A click token that is malformed, forged or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Decode canonical unpadded base64url; ValueError for anything else (padding, other characters, stray bits)."""
    data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    if _b64(data) != text:
        raise ValueError("not canonical base64url")
    return data


def load_or_create_secret(path: str | Path) -> bytes:
    """The workspace's click secret; made once (32 random bytes) and kept.

    Replicas that start at once on one workspace must end with one secret (a click
    signed by one is verified by another): the new secret is written aside and
    linked into place, which fails for all but the first; the others read the winner's.
    """
    path = Path(path)
    if not path.exists():
        tmp = atomic_write_bytes(
            path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"), secrets.token_bytes(32).hex().encode()
        )
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            tmp.unlink()
    try:
        secret = bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise UserError(f"{path}: click secret is not hex; delete it to make a new one") from None
    if len(secret) < 16:
        raise UserError(f"{path}: click secret is too short; delete it to make a new one")
    return secret


class ClickSigner:
    def __init__(self, secret: bytes, ttl_s: float = 7 * 24 * 3600):
        self.secret = secret
        self.ttl_s = ttl_s

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self.secret, payload, hashlib.sha256).digest()

    def sign(self, impression_id: str, now: float | None = None) -> str:
        exp = int((time.time() if now is None else now) + self.ttl_s)
        payload = json.dumps({"i": impression_id, "e": exp}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, token: str, now: float | None = None) -> str:
        """The impression id in a valid token; BadToken says what is wrong otherwise."""
        try:
            head, sig = token.split(".")
            payload, mac = _unb64(head), _unb64(sig)
        except (ValueError, TypeError):
            raise BadToken("click token is malformed") from None
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise BadToken("click token signature does not match")
        try:
            data = json.loads(payload, parse_constant=_refuse_constant)
        except ValueError:
            data = None
        if not (
            isinstance(data, dict)
            and isinstance(data.get("i"), str)
            and data["i"].isascii()
            and type(data.get("e")) is int
        ):
            raise BadToken("click token payload is not an impression id and an expiry")
        if data["e"] < (time.time() if now is None else now):
            raise BadToken("click token has expired")
        return data["i"]


def _refuse_constant(name: str) -> None:
    """NaN and Infinity are not JSON: a payload holding them is malformed."""
    raise ValueError(f"{name} is not allowed in a click token")
