import os
import stat
from pathlib import Path

import pytest

from core.config import Settings, ensure_private_dir, load_settings, restrict_file


def test_defaults_follow_xdg_with_home_fallbacks(tmp_path):
    settings = load_settings({"HOME": str(tmp_path)})
    assert settings.store_path == tmp_path / ".local/share/switchboard/switchboard.duckdb"
    assert settings.key_file == tmp_path / ".config/switchboard/store.key"
    assert settings.key is None


def test_xdg_directories_are_used_when_absolute(tmp_path):
    settings = load_settings({"HOME": str(tmp_path), "XDG_DATA_HOME": "/data", "XDG_CONFIG_HOME": "/conf"})
    assert settings.store_path == Path("/data/switchboard/switchboard.duckdb")
    assert settings.key_file == Path("/conf/switchboard/store.key")


def test_relative_xdg_values_are_ignored(tmp_path):
    # The XDG base directory spec: relative paths are invalid and must be ignored.
    settings = load_settings({"HOME": str(tmp_path), "XDG_DATA_HOME": "rel", "XDG_CONFIG_HOME": "rel"})
    assert settings.store_path.is_relative_to(tmp_path / ".local/share")
    assert settings.key_file.is_relative_to(tmp_path / ".config")


def test_explicit_variables_win(tmp_path):
    settings = load_settings(
        {
            "HOME": str(tmp_path),
            "SWITCHBOARD_STORE": "/s/x.duckdb",
            "SWITCHBOARD_KEY_FILE": "~/k.key",
            "SWITCHBOARD_KEY": "  abc  ",
        }
    )
    assert settings.store_path == Path("/s/x.duckdb")
    assert settings.key_file == Path("~/k.key").expanduser()
    assert settings.key == "abc"


def test_empty_variables_count_as_unset(tmp_path):
    settings = load_settings({"HOME": str(tmp_path), "SWITCHBOARD_STORE": "", "SWITCHBOARD_KEY": " "})
    assert settings.store_path.name == "switchboard.duckdb"
    assert settings.key is None


def test_repr_masks_the_key():
    settings = Settings(Path("/s"), Path("/k"), key="super-secret-key-material")
    assert "super-secret" not in repr(settings)
    assert "<redacted>" in repr(settings)


def test_private_dirs_are_created_0700_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        ensure_private_dir(tmp_path / "a" / "b" / "c")
    finally:
        os.umask(old)
    for path in (tmp_path / "a", tmp_path / "a/b", tmp_path / "a/b/c"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_existing_dirs_are_left_alone(tmp_path):
    os.chmod(tmp_path, 0o755)
    ensure_private_dir(tmp_path)
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_restrict_file(tmp_path):
    path = tmp_path / "f"
    path.write_text("x")
    os.chmod(path, 0o644)
    restrict_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    restrict_file(tmp_path / "missing")  # no error


def test_listing_limits_from_the_environment() -> None:
    from core.config import ListingLimits, load_listing_limits

    assert load_listing_limits({}) == ListingLimits()
    limits = load_listing_limits(
        {
            "SWITCHBOARD_LISTING_MAX_BYTES": "1048576",
            "SWITCHBOARD_LISTING_MAX_ITEMS": " 250 ",
            "SWITCHBOARD_LISTING_DEADLINE": "2.5",
        }
    )
    assert limits == ListingLimits(max_bytes=1 << 20, max_items=250, deadline=2.5)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SWITCHBOARD_LISTING_MAX_BYTES", "lots"),
        ("SWITCHBOARD_LISTING_MAX_BYTES", "1.5"),
        ("SWITCHBOARD_LISTING_MAX_ITEMS", "0"),
        ("SWITCHBOARD_LISTING_DEADLINE", "-1"),
        ("SWITCHBOARD_LISTING_DEADLINE", "inf"),
        ("SWITCHBOARD_LISTING_DEADLINE", "nan"),
    ],
)
def test_a_bad_listing_limit_names_the_variable(name: str, value: str) -> None:
    from core.config import load_listing_limits
    from core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=name):
        load_listing_limits({name: value})
