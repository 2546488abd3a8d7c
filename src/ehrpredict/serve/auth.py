"""API keys with scopes, and the dashboard's signed session cookie.

A key looks like ``ehp_<id>_<secret>``. The keys file (JSON, written by ``ehrpredict keys add``)
stores each key's id, name, scopes, a random salt and ``sha256(salt + secret)``: never the key
itself, which is printed once when it is made. The secret is 32 random bytes, so a salted SHA-256
is enough (a slow password hash protects guessable passwords; these are not guessable, and a fast
check keeps it out of the latency budget). Comparison is constant-time.

Scopes: ``predict`` (score patients, CDS Hooks), ``read`` (models, reports, the dashboard) and
``admin`` (everything, including ``/metrics``). A request without a valid key gets 401; a valid key
without the route's scope gets 403.

The dashboard's login page takes a key with the ``read`` scope and sets a session cookie: the key's id,
scopes and expiry, signed with HMAC-SHA256 under the server's session secret (random per process
unless ``--session-secret-file`` is given, so sessions end when the server restarts), HttpOnly and
SameSite=Strict.

    >>> key, entry = new_key("ehr-integration", ("predict",))
    >>> key.startswith("ehp_") and entry.verify(key.split("_", 2)[2])
    True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ehrpredict.errors import ConfigError
from ehrpredict.ingest.output import write_json

SCOPES = ("predict", "read", "admin")
KEYS_FORMAT = "ehrpredict-keys"
KEY_PREFIX = "ehp"
SESSION_COOKIE = "ehrpredict_session"
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class KeyEntry:
    id: str
    name: str
    scopes: tuple[str, ...]
    salt: str
    sha256: str
    created: str

    def verify(self, secret: str) -> bool:
        digest = hashlib.sha256(bytes.fromhex(self.salt) + secret.encode()).hexdigest()
        return hmac.compare_digest(digest, self.sha256)

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


@dataclass(frozen=True)
class Principal:
    """Who is asking: a key's id and scopes (from the header or a session cookie)."""

    key_id: str
    scopes: tuple[str, ...]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def _scopes(scopes: Iterable[str], where: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    unknown = [s for s in chosen if s not in SCOPES]
    if not chosen or unknown:
        raise ConfigError(f"expected scopes among {', '.join(SCOPES)}, got {', '.join(chosen) or 'none'} ({where})")
    return chosen


def new_key(name: str, scopes: Iterable[str]) -> tuple[str, KeyEntry]:
    """A fresh key (shown once) and the entry that stores only its salted hash."""
    key_id, secret, salt = secrets.token_hex(4), secrets.token_urlsafe(32), secrets.token_bytes(16)
    entry = KeyEntry(key_id, name, _scopes(scopes, "new key"), salt.hex(),
                     hashlib.sha256(salt + secret.encode()).hexdigest(),
                     datetime.now(UTC).replace(microsecond=0).isoformat())
    return f"{KEY_PREFIX}_{key_id}_{secret}", entry


@dataclass(frozen=True)
class KeyStore:
    entries: tuple[KeyEntry, ...]

    @classmethod
    def read(cls, path: str | Path) -> KeyStore:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"expected a keys file at {path}, got none (make one with: ehrpredict keys add "
                              f"{path} --name NAME --scopes predict,read)") from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"expected a JSON keys file, got {exc} ({path})") from exc
        if not isinstance(data, dict) or data.get("format") != KEYS_FORMAT or not isinstance(data.get("keys"), list):
            raise ConfigError(f"expected a keys file with format {KEYS_FORMAT!r} and a list of keys ({path})")
        entries = []
        for i, raw in enumerate(data["keys"]):
            where = f"{path}, keys[{i}]"
            try:
                entries.append(KeyEntry(str(raw["id"]), str(raw["name"]), _scopes(raw["scopes"], where),
                                        str(raw["salt"]), str(raw["sha256"]), str(raw.get("created", ""))))
            except (KeyError, TypeError) as exc:
                raise ConfigError(f"expected id, name, scopes, salt and sha256, got {raw!r} ({where})") from exc
        ids = [e.id for e in entries]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"expected distinct key ids, got repeats ({path})")
        return cls(tuple(entries))

    def write(self, path: str | Path) -> None:
        write_json(Path(path), {"format": KEYS_FORMAT, "version": 1, "keys": [asdict(e) for e in self.entries]})
        os.chmod(path, 0o600)

    def add(self, entry: KeyEntry) -> KeyStore:
        return KeyStore((*self.entries, entry))

    def revoke(self, key_id: str) -> KeyStore:
        if key_id not in {e.id for e in self.entries}:
            raise ConfigError(f"expected the id of a key in the file, got {key_id!r}")
        return KeyStore(tuple(e for e in self.entries if e.id != key_id))

    def authenticate(self, key: str) -> Principal | None:
        """The key's principal, or None when the key is unknown, malformed or wrong."""
        parts = key.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX:
            return None
        for entry in self.entries:
            if hmac.compare_digest(entry.id, parts[1]) and entry.verify(parts[2]):
                return Principal(entry.id, entry.scopes)
        return None


@dataclass(frozen=True)
class SessionSigner:
    """Signs and checks the dashboard's session cookie (``payload.signature``, both base64url)."""

    secret: bytes

    @classmethod
    def from_file(cls, path: str | Path | None) -> SessionSigner:
        if path is None:
            return cls(secrets.token_bytes(32))
        raw = Path(path).read_bytes().strip()
        if len(raw) < 32:
            raise ConfigError(f"expected a session secret of at least 32 bytes, got {len(raw)} ({path})")
        return cls(raw)

    def _mac(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self.secret, payload, hashlib.sha256).digest()).decode().rstrip("=")

    def sign(self, principal: Principal, seconds: int = SESSION_SECONDS, now: float | None = None) -> str:
        body = {"kid": principal.key_id, "scopes": list(principal.scopes), "exp": int((now or time.time()) + seconds)}
        payload = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{payload}.{self._mac(payload.encode())}"

    def check(self, cookie: str, now: float | None = None) -> Principal | None:
        payload, _, mac = cookie.partition(".")
        if not payload or not hmac.compare_digest(self._mac(payload.encode()), mac):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            if int(body["exp"]) < (now or time.time()):
                return None
            return Principal(str(body["kid"]), tuple(str(s) for s in body["scopes"]))
        except (ValueError, KeyError, TypeError):
            return None
