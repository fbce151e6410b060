"""Authentication rules of `beacon serve`: the rule each route declares, key checks, visitor tokens, limits.

Every route declares its rule in the OpenAPI document (`openapi_extra={"x-beacon-auth": rule}` via `rule()`),
and `tests/service/test_auth_rules.py` walks `app.openapi()` and fails on a route without one. Keys are
compared in constant time (over their SHA-256, so the length of a configured key does not show either).
A later admin-key route (e.g. `POST /v1/privacy/requests`) should declare `rule("admin_key")` and check the
key with `key_matches` against its own key set, never the write or offers keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict

from fastapi import Request

RULES = {
    "write_key": "a source's write key (HTTP Basic username or `writeKey`)",
    "admin_key": "an admin key (Authorization: Bearer)",
    "offers_key": "a server-side offers key (Authorization: Bearer), never a write key",
    "signed_token": "a short-lived visitor token issued with an offers key (Authorization: Bearer)",
    "provider_signature": "the email or SMS provider's signature or credentials",
    "unsubscribe_token": "the HMAC-signed link of a sent email",
    "confirm_token": "the HMAC-signed double opt-in link sent to the address",
    "public": "no credential (listed with its reason in PUBLIC_WRITES when it changes data)",
}
TOKEN_MAX_SECONDS = 3600  # a visitor token lives at most an hour


def rule(name: str, writes: bool = False) -> dict:
    """The OpenAPI extension a route declares: its authentication rule, and whether a GET changes data."""
    if name not in RULES:
        raise ValueError(f"unknown auth rule {name!r}; known: {sorted(RULES)}")
    return {"x-beacon-auth": name, **({"x-beacon-writes": True} if writes else {})}


def bearer(request: Request) -> str | None:
    """The Authorization: Bearer credential, or None."""
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() or None if auth[:7].lower() == "bearer " else None


def key_matches(presented: str | None, keys) -> str | None:
    """The name a configured key maps to when `presented` is one of `keys` (dict key -> name), else None.

    Every key is compared (no early exit) and over SHA-256 digests, so timing says nothing of the keys."""
    if not presented:
        return None
    got = hashlib.sha256(presented.encode()).digest()
    found = None
    for k, name in keys.items():
        if hmac.compare_digest(got, hashlib.sha256(k.encode()).digest()) and found is None:
            found = name
    return found


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def issue_token(secret: str, subject: str, expires: int) -> str:
    """`v1.<subject, base64url>.<expiry, unix s>.<HMAC-SHA256(secret, "offers:subject:expiry"), base64url>`."""
    mac = hmac.new(secret.encode(), f"offers:{subject}:{expires}".encode(), hashlib.sha256).digest()
    return f"v1.{_b64(subject.encode())}.{expires}.{_b64(mac)}"


def verify_token(secret: str, token: str | None, now: float) -> str | None:
    """The subject a valid, unexpired token binds, else None (forged, malformed and expired alike)."""
    try:
        version, subj, exp, mac = (token or "").split(".")
        subject = base64.urlsafe_b64decode(subj + "=" * (-len(subj) % 4)).decode()
        expires = int(exp)
    except (ValueError, UnicodeDecodeError):
        return None
    good = issue_token(secret, subject, expires).rsplit(".", 1)[1]
    if version != "v1" or not hmac.compare_digest(good.encode(), mac.encode()) or expires < now:
        return None
    return subject


class WindowLimiter:
    """At most `limit` hits per key in a fixed window of `window` seconds; memory bounded by `max_keys`.

    Keys are what the caller passes (forms pass a keyed hash, never a raw address). When full, the oldest
    window is dropped first, so a flood of distinct keys cannot grow memory."""

    def __init__(self, limit: int, window: float, max_keys: int = 100_000):
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._hits: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def hit(self, key: str, now: float | None = None) -> float:
        """0 when allowed (counted), else the seconds until the key's window ends."""
        now = time.monotonic() if now is None else now
        start, n = self._hits.get(key, (now, 0))
        if now - start >= self.window:
            start, n = now, 0
        if n >= self.limit:
            return max(self.window - (now - start), 0.001)
        self._hits[key] = (start, n + 1)
        self._hits.move_to_end(key)
        while len(self._hits) > self.max_keys:
            self._hits.popitem(last=False)
        return 0.0


class KeyedHash:
    """HMAC-SHA256 under a per-process random key: a limiter key that is not the address and cannot be reversed
    by hashing guessed addresses (the key never leaves memory and changes at each start)."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def __call__(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
