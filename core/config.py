"""Where Switchboard keeps its files, resolved from the environment.

- `SWITCHBOARD_STORE`: the DuckDB store file, or a `postgresql://…` URL (`store_url`; then the
  file path is unused). Default `$XDG_DATA_HOME/switchboard/switchboard.duckdb` (`$XDG_DATA_HOME`
  defaults to `~/.local/share`).
- `SWITCHBOARD_KEY_FILE`: the key file that encrypts the store's secrets. Default
  `$XDG_CONFIG_HOME/switchboard/store.key` (`$XDG_CONFIG_HOME` defaults to `~/.config`). It lives
  apart from the store on purpose: a copied database alone reveals no secret.
- `SWITCHBOARD_KEY`: the key material itself, for containers where a file is awkward; it takes
  precedence over the key file (see `core.store.crypto.Keyring` for its format).

What one listing of a server (`tools/list` with all its pages: one sync) may cost, so a hostile or
broken server cannot make a sync hold gigabytes or run forever (`ListingLimits`):

- `SWITCHBOARD_LISTING_MAX_BYTES`: the response bytes of all its pages together. Default 32 MiB.
- `SWITCHBOARD_LISTING_MAX_ITEMS`: the tools (or resources, prompts) it returns. Default 5000.
- `SWITCHBOARD_LISTING_DEADLINE`: seconds for the whole listing, all pages. Default 120.

The outbound network allow-list (`SWITCHBOARD_ALLOW_HOSTS`) is read by `core.net.policy`.

Files holding secrets or ciphertexts are private to the operator: directories Switchboard creates are
0700, the store file, its WAL, lock files and the key file are 0600.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ConfigurationError

STORE_ENV = "SWITCHBOARD_STORE"
KEY_FILE_ENV = "SWITCHBOARD_KEY_FILE"
KEY_ENV = "SWITCHBOARD_KEY"
LISTING_MAX_BYTES_ENV = "SWITCHBOARD_LISTING_MAX_BYTES"
LISTING_MAX_ITEMS_ENV = "SWITCHBOARD_LISTING_MAX_ITEMS"
LISTING_DEADLINE_ENV = "SWITCHBOARD_LISTING_DEADLINE"

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


@dataclass(frozen=True)
class Settings:
    """Resolved locations. `key` is the raw `SWITCHBOARD_KEY` value (masked in `repr`)."""

    store_path: Path
    key_file: Path
    key: str | None = field(default=None, repr=False)
    store_url: str | None = field(default=None, repr=False)  # a URL is never turned into a Path

    def __repr__(self) -> str:
        key = "<redacted>" if self.key else None
        store = "<url>" if self.store_url else repr(str(self.store_path))
        return f"Settings(store_path={store}, key_file={str(self.key_file)!r}, key={key})"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `environ` (default `os.environ`); empty variables count as unset."""
    env = os.environ if environ is None else environ
    home = Path(env.get("HOME") or Path.home())
    data_home = _xdg_dir(env, "XDG_DATA_HOME", home / ".local" / "share")
    config_home = _xdg_dir(env, "XDG_CONFIG_HOME", home / ".config")
    store = env.get(STORE_ENV, "").strip()
    store_url = store if "://" in store else None
    key_file = env.get(KEY_FILE_ENV, "").strip()
    default_path = data_home / "switchboard" / "switchboard.duckdb"
    return Settings(
        store_path=Path(store).expanduser() if store and not store_url else default_path,
        store_url=store_url,
        key_file=Path(key_file).expanduser() if key_file else config_home / "switchboard" / "store.key",
        key=env.get(KEY_ENV, "").strip() or None,
    )


@dataclass(frozen=True)
class ListingLimits:
    """Caps on one listing of one server (see the module docstring)."""

    max_bytes: int = 32 << 20
    max_items: int = 5000
    deadline: float = 120.0


def load_listing_limits(environ: Mapping[str, str] | None = None) -> ListingLimits:
    """The listing caps from `environ` (default `os.environ`); empty variables count as unset."""
    env = os.environ if environ is None else environ
    default = ListingLimits()
    return ListingLimits(
        max_bytes=int(_positive(env, LISTING_MAX_BYTES_ENV, default.max_bytes, whole=True)),
        max_items=int(_positive(env, LISTING_MAX_ITEMS_ENV, default.max_items, whole=True)),
        deadline=_positive(env, LISTING_DEADLINE_ENV, default.deadline, whole=False),
    )


def _positive(env: Mapping[str, str], name: str, default: float, *, whole: bool) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = 0
    if not value > 0 or value == float("inf"):
        kind = "a whole number" if whole else "a number"
        raise ConfigurationError(
            f"{name}={text!r} is not a positive {kind}", hint=f"unset it for {default:g}"
        )
    return value


def _xdg_dir(env: Mapping[str, str], name: str, default: Path) -> Path:
    # The XDG spec says relative values are invalid and must be ignored.
    value = env.get(name, "").strip()
    return Path(value) if value and os.path.isabs(value) else default


def ensure_private_dir(path: Path) -> None:
    """Create `path` and any missing parents with mode 0700.

    Directories that already exist are left alone: the operator may have chosen a shared location on
    purpose, and tightening, say, their home directory is not ours to do.
    """
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # another process created it meanwhile
            continue
        os.chmod(directory, PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask


def restrict_file(path: Path) -> None:
    """Make an existing file 0600 (no-op when it is missing or already private)."""
    try:
        if os.stat(path).st_mode & 0o777 != PRIVATE_FILE_MODE:
            os.chmod(path, PRIVATE_FILE_MODE)
    except FileNotFoundError:  # e.g. a WAL that a checkpoint just removed
        pass
