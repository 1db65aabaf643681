"""Encryption of secrets at rest: AES-256-GCM with associated data, keys outside the database.

Every secret column holds a self-describing blob::

    format (1 byte) | key id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext + tag

The nonce is 12 fresh random bytes per encryption (R-02). The associated data is a canonical JSON
encoding of (format, table, column, row, key id) where `row` is the row's key plus any context the
secret is bound to (for tokens: issuer, client id and resource). So a blob copied to another row,
column or table, or re-labelled with another key id, fails authentication exactly like a flipped bit
or a truncation (R-03, R-04). Every such failure, and an unknown key id, raises
`CredentialUnavailable`; nothing ever falls back to plaintext (R-06).

Keys: a `Keyring` holds 256-bit keys by id, one of them active (used for new encryptions); the others
only decrypt until no row uses them any more (rotation, R-05). It comes from `SWITCHBOARD_KEY` when
set, otherwise from the key file, created on first use with mode 0600. The key file is JSON::

    {"format": "switchboard-keyring-1", "active": "<id>", "keys": {"<id>": "<base64 of 32 bytes>"}}

`SWITCHBOARD_KEY` is either such a document or just the base64 of one 32-byte key. Keys are never
written to the database, and a file keyring re-reads its file when it changes, so a rotation done by
one process reaches the others before they next encrypt or meet an unknown key id.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.config import PRIVATE_FILE_MODE, Settings, ensure_private_dir
from core.errors import ConfigurationError, CredentialUnavailable
from core.redaction import fingerprint

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = 1
KEYRING_FORMAT = "switchboard-keyring-1"
KEY_BYTES = 32
NONCE_BYTES = 12
_TAG_BYTES = 16
_MAX_KEY_ID = 64


class Secret:
    """A decrypted secret. `repr`/`str` never show it; `reveal()` does, on purpose."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def fingerprint(self) -> str:
        return fingerprint(self._value)

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]  # equal secrets hash alike: keep them out of sets and dicts


@dataclass(frozen=True)
class SecretContext:
    """Where a ciphertext belongs; it is authenticated as associated data."""

    table: str
    column: str
    row: tuple[str, ...]


def key_id_of(blob: bytes) -> str | None:
    """The key id a blob claims (unauthenticated until decryption), or None when it is malformed."""
    parsed = _parse(blob)
    return parsed[0] if parsed else None


class Keyring:
    """Keys by id with one active key; optionally backed by a key file that it keeps in sync with."""

    def __init__(
        self, keys: Mapping[str, bytes], active: str, *, path: Path | None = None, fixed: bool = False
    ) -> None:
        """`path`: the key file this keyring mirrors. `fixed`: keys given from outside (SWITCHBOARD_KEY)
        that Switchboard must not change, since a key it added could not be persisted anywhere."""
        _validate(keys, active)
        # One tuple, replaced whole, so a thread never sees new keys with an old active id.
        self._state: tuple[dict[str, bytes], str] = (dict(keys), active)
        self._path = path
        self._fixed = fixed
        self._stamp = _stamp(path) if path else None
        self._mutex = threading.Lock()

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def generate(cls) -> Keyring:
        """A fresh in-memory keyring (tests, throwaway stores)."""
        key_id = _new_key_id()
        return cls({key_id: _aesgcm().generate_key(bit_length=256)}, key_id)

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """`SWITCHBOARD_KEY` when set, else the key file (created on first use)."""
        if settings.key:
            return cls.from_value(settings.key)
        return cls.from_file(settings.key_file)

    @classmethod
    def from_value(cls, value: str) -> Keyring:
        """A `SWITCHBOARD_KEY` value: a keyring document or the base64 of one 32-byte key."""
        value = value.strip()
        if value.startswith("{"):
            keys, active = _parse_document(value, source="SWITCHBOARD_KEY")
            return cls(keys, active, fixed=True)
        key = _decode_key(value, source="SWITCHBOARD_KEY")
        # A stable id derived from the key, so rows written in earlier runs name the same id.
        key_id = "env-" + hashlib.sha256(b"switchboard key id\0" + key).hexdigest()[:12]
        return cls({key_id: key}, key_id, fixed=True)

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        """Load the key file, creating it (0600, in a 0700 directory) when it does not exist."""
        path = Path(path)
        if not path.exists():
            _create_key_file(path)
        keys, active = _read_key_file(path)
        return cls(keys, active, path=path)

    # --- use ------------------------------------------------------------------------------------

    @property
    def active_id(self) -> str:
        return self._state[1]

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._state[0])

    @property
    def path(self) -> Path | None:
        return self._path

    def encrypt(self, plaintext: str, context: SecretContext, *, key_id: str | None = None) -> bytes:
        keys, active = self._state
        key_id = key_id or active
        key = keys.get(key_id)
        if key is None:
            raise ConfigurationError(f"no key {key_id!r} in the keyring")
        nonce = os.urandom(NONCE_BYTES)
        sealed = _aesgcm()(key).encrypt(nonce, plaintext.encode(), _associated_data(context, key_id))
        kid = key_id.encode("ascii")
        return bytes((FORMAT_VERSION, len(kid))) + kid + nonce + sealed

    def decrypt(self, blob: bytes, context: SecretContext) -> Secret:
        """The plaintext, or `CredentialUnavailable` (unknown key, tampered, truncated or moved)."""
        parsed = _parse(blob)
        if parsed is None:
            raise CredentialUnavailable(
                f"the stored {context.column} in {context.table} is malformed",
                hint="authorize or enter the secret again",
            )
        key_id, nonce, sealed = parsed
        key = self._state[0].get(key_id)
        if key is None and self.refresh():  # another process may have rotated the key file
            key = self._state[0].get(key_id)
        if key is None:
            raise CredentialUnavailable(
                f"the stored {context.column} in {context.table} was encrypted with key {key_id!r}, "
                "which is not in the keyring",
                hint="restore that key, or authorize or enter the secret again",
            )
        from cryptography.exceptions import InvalidTag

        try:
            plaintext = _aesgcm()(key).decrypt(nonce, sealed, _associated_data(context, key_id))
        except InvalidTag:
            raise CredentialUnavailable(
                f"the stored {context.column} in {context.table} failed authentication "
                "(tampered with, or copied from another row)",
                hint="authorize or enter the secret again",
            ) from None
        return Secret(plaintext.decode())

    # --- the key file ---------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Re-read the key file if it changed since we read it; True when it did."""
        if self._path is None:
            return False
        stamp = _stamp(self._path)
        if stamp == self._stamp:
            return False
        with self._mutex:
            keys, active = _read_key_file(self._path)
            self._state, self._stamp = (keys, active), stamp
        return True

    def rotate(self) -> str:
        """Add a new key and make it active; old keys stay for decryption. Returns the new id."""
        key_id = _new_key_id()
        new_key = _aesgcm().generate_key(bit_length=256)
        with self._editing() as (keys, _active):
            keys[key_id] = new_key
            self._write(keys, key_id)
        return key_id

    def retire(self, key_ids: Iterable[str]) -> tuple[str, ...]:
        """Remove keys that are not active. The caller has checked that nothing uses them."""
        with self._editing() as (keys, active):
            retired = tuple(k for k in key_ids if k in keys and k != active)
            for key_id in retired:
                del keys[key_id]
            if retired:
                self._write(keys, active)
        return retired

    @property
    def editable(self) -> bool:
        return not self._fixed

    @contextlib.contextmanager
    def _editing(self) -> Iterator[tuple[dict[str, bytes], str]]:
        if self._fixed:
            raise ConfigurationError(
                "the store keys come from SWITCHBOARD_KEY, which Switchboard cannot change",
                hint="put a keyring document with a new active key (and the old keys) into SWITCHBOARD_KEY, "
                "restart, then re-encrypt the store",
            )
        if self._path is None:
            with self._mutex:
                yield dict(self._state[0]), self._state[1]
            return
        # One writer at a time across processes; re-read under the lock so no one's key is dropped.
        with self._mutex, _flocked(self._path.with_name(self._path.name + ".lock")):
            keys, active = _read_key_file(self._path)
            yield keys, active

    def _write(self, keys: dict[str, bytes], active: str) -> None:
        _validate(keys, active)
        if self._path is not None:
            _replace_file(self._path, _document(keys, active))
            self._stamp = _stamp(self._path)
        self._state = (dict(keys), active)

    def __repr__(self) -> str:
        source = str(self._path) if self._path else "memory"
        keys, active = self._state
        return f"Keyring(active={active!r}, keys={list(keys)!r}, source={source!r})"


# --- internals ------------------------------------------------------------------------------------


def _associated_data(context: SecretContext, key_id: str) -> bytes:
    # JSON of a list of strings is an unambiguous encoding: no field can bleed into the next.
    return json.dumps(
        ["switchboard-secret", FORMAT_VERSION, context.table, context.column, list(context.row), key_id],
        separators=(",", ":"),
    ).encode()


def _parse(blob: bytes) -> tuple[str, bytes, bytes] | None:
    if not isinstance(blob, bytes | bytearray | memoryview):
        return None
    blob = bytes(blob)
    if len(blob) < 2 or blob[0] != FORMAT_VERSION:
        return None
    end = 2 + blob[1]
    if blob[1] == 0 or len(blob) < end + NONCE_BYTES + _TAG_BYTES:
        return None
    try:
        key_id = blob[2:end].decode("ascii")
    except UnicodeDecodeError:
        return None
    return key_id, blob[end : end + NONCE_BYTES], blob[end + NONCE_BYTES :]


def _new_key_id() -> str:
    return time.strftime("%Y%m%d", time.gmtime()) + "-" + secrets.token_hex(4)


def _validate(keys: Mapping[str, bytes], active: str) -> None:
    if active not in keys:
        raise ConfigurationError("the keyring's active key is not among its keys")
    for key_id, key in keys.items():
        if not key_id or len(key_id) > _MAX_KEY_ID or not key_id.isascii() or not key_id.isprintable():
            raise ConfigurationError(f"invalid key id in the keyring: {key_id[:_MAX_KEY_ID]!r}")
        if len(key) != KEY_BYTES:
            raise ConfigurationError(f"key {key_id!r} is not {KEY_BYTES} bytes long")


def _decode_key(text: str, *, source: str) -> bytes:
    try:
        key = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:  # never echo the value: it is a key, or was meant to be one
        raise ConfigurationError(
            f"{source} must hold the base64 of a {KEY_BYTES}-byte key",
            hint='generate one with: python -c "import os,base64;'
            'print(base64.b64encode(os.urandom(32)).decode())"',
        )
    return key


def _parse_document(text: str, *, source: str) -> tuple[dict[str, bytes], str]:
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigurationError(f"{source} is not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != KEYRING_FORMAT:
        raise ConfigurationError(f"{source} is not a Switchboard keyring ({KEYRING_FORMAT})")
    raw_keys, active = data.get("keys"), data.get("active")
    if not isinstance(raw_keys, dict) or not isinstance(active, str):
        raise ConfigurationError(f"{source} needs 'keys' (an object) and 'active' (a key id)")
    keys = {str(k): _decode_key(str(v), source=f"{source} key {k!r}") for k, v in raw_keys.items()}
    _validate(keys, active)
    return keys, active


def _document(keys: Mapping[str, bytes], active: str) -> bytes:
    data = {
        "format": KEYRING_FORMAT,
        "active": active,
        "keys": {k: base64.b64encode(v).decode() for k, v in keys.items()},
    }
    return (json.dumps(data, indent=2) + "\n").encode()


def _read_key_file(path: Path) -> tuple[dict[str, bytes], str]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise ConfigurationError(
            f"key file {path} is missing",
            hint="restore it from your backup; without it stored secrets are lost",
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(handle.fileno())
        if status.st_uid != os.geteuid():
            # Whoever owns it can read or replace our keys, whatever its mode says (#16.7).
            raise ConfigurationError(
                f"key file {path} is owned by another user (uid {status.st_uid}, not {os.geteuid()})",
                hint=f"run Switchboard as its owner, or take it over: chown $(id -u) {path}",
            )
        if status.st_mode & 0o077:
            raise ConfigurationError(
                f"key file {path} is readable by other users", hint=f"run: chmod 600 {path}"
            )
        text = handle.read().decode("utf-8", "replace")
    return _parse_document(text, source=f"key file {path}")


def _aesgcm() -> type[AESGCM]:
    # cryptography's Rust bindings load on the first secret encrypted or decrypted, not with the store:
    # a command that reads no secret (`switchboard connector list`) does without them.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM


def _create_key_file(path: Path) -> None:
    ensure_private_dir(path.parent)
    key_id = _new_key_id()
    document = _document({key_id: _aesgcm().generate_key(bit_length=256)}, key_id)
    temporary = _write_private_temp(path, document)
    try:
        os.link(temporary, path)  # atomic and never overwrites: a concurrent first run keeps its key
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)


def _replace_file(path: Path, content: bytes) -> None:
    temporary = _write_private_temp(path, content)
    os.replace(temporary, path)
    _fsync_dir(path.parent)


def _write_private_temp(path: Path, content: bytes) -> Path:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    return temporary


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@contextlib.contextmanager
def _flocked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # key-file edits are rare and short: a plain blocking wait
        yield
    finally:
        os.close(fd)  # closing releases the lock
