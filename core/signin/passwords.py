"""Dashboard operators' passwords (`--auth basic`): Argon2id hashes from argon2-cffi.

Why Argon2id and argon2-cffi: Argon2id is the OWASP Password Storage Cheat Sheet's first choice and
the Password Hashing Competition's winner — memory-hard, so guessing on GPUs costs what it costs
here. argon2-cffi is the maintained binding (Hynek Schlawack; wheels for every platform, RFC 9106
parameters by default, `check_needs_rehash` when they change). bcrypt, the alternative, is not
memory-hard and silently (older releases) or loudly (5.x) limits passwords to 72 bytes.

Only the encoded hash (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) is stored; a password is never
logged, stored or echoed. Checking an unknown user name costs the same as checking a known one, so
timing does not tell which names exist.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from core.errors import ConfigurationError

MIN_PASSWORD_LENGTH = 12
_hasher = PasswordHasher()
_UNKNOWN_USER_HASH = _hasher.hash("a password nobody has, for names nobody has")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigurationError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def password_matches(encoded: str | None, password: str) -> bool:
    """Whether `password` is the one `encoded` was made from (None: no such user — checked anyway)."""
    try:
        return _hasher.verify(encoded or _UNKNOWN_USER_HASH, password) and encoded is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(encoded: str) -> bool:
    """Whether `encoded` was made with other parameters than today's (rehash at the next sign-in)."""
    return _hasher.check_needs_rehash(encoded)
