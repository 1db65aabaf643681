import base64
import json
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import Settings
from core.errors import ConfigurationError, CredentialUnavailable
from core.store.crypto import (
    FORMAT_VERSION,
    NONCE_BYTES,
    Keyring,
    Secret,
    SecretContext,
    fingerprint,
    key_id_of,
)

CTX = SecretContext(
    "credentials", "access_token", ("conn1", "agent1", "https://as", "client", "https://rs/mcp")
)


@pytest.fixture
def keyring():
    return Keyring.generate()


def test_round_trip(keyring):
    blob = keyring.encrypt("tok-123", CTX)
    assert keyring.decrypt(blob, CTX).reveal() == "tok-123"
    assert b"tok-123" not in blob
    assert key_id_of(blob) == keyring.active_id
    assert blob[0] == FORMAT_VERSION


def test_unicode_and_empty_plaintexts(keyring):
    for text in ("", "ünïcødé ✓", "x" * 100_000):
        assert keyring.decrypt(keyring.encrypt(text, CTX), CTX).reveal() == text


def test_ten_thousand_encryptions_use_distinct_nonces_and_ciphertexts(keyring):
    blobs = [keyring.encrypt("same plaintext", CTX) for _ in range(10_000)]
    header = 2 + len(keyring.active_id)
    nonces = {b[header : header + NONCE_BYTES] for b in blobs}
    assert len(nonces) == 10_000
    assert len(set(blobs)) == 10_000


@pytest.mark.parametrize(
    "other",
    [
        SecretContext(
            "credentials", "access_token", ("conn1", "agent2", "https://as", "client", "https://rs/mcp")
        ),
        SecretContext(
            "credentials", "access_token", ("conn2", "agent1", "https://as", "client", "https://rs/mcp")
        ),
        SecretContext("credentials", "refresh_token", CTX.row),
        SecretContext("oauth_clients", "access_token", CTX.row),
        SecretContext(
            "credentials", "access_token", ("conn1", "agent1", "https://evil", "client", "https://rs/mcp")
        ),
        SecretContext(
            "credentials", "access_token", ("conn1", "agent1", "https://as", "client", "https://evil/mcp")
        ),
        # Field boundaries must matter: ("a", "bc") is not ("ab", "c").
        SecretContext(
            "credentials", "access_token", ("conn1agent1", "", "https://as", "client", "https://rs/mcp")
        ),
    ],
)
def test_a_ciphertext_moved_to_another_row_column_table_or_binding_fails(keyring, other):
    blob = keyring.encrypt("tok", CTX)
    with pytest.raises(CredentialUnavailable):
        keyring.decrypt(blob, other)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_single_bit_flip_fails(data):
    keyring = _FIXED_KEYRING
    blob = keyring.encrypt("secret value", CTX)
    position = data.draw(st.integers(0, len(blob) * 8 - 1))
    tampered = bytearray(blob)
    tampered[position // 8] ^= 1 << (position % 8)
    with pytest.raises(CredentialUnavailable):
        keyring.decrypt(bytes(tampered), CTX)


_FIXED_KEYRING = Keyring.generate()


def test_every_truncation_fails(keyring):
    blob = keyring.encrypt("secret value", CTX)
    for length in range(len(blob)):
        with pytest.raises(CredentialUnavailable):
            keyring.decrypt(blob[:length], CTX)


def test_garbage_fails_closed(keyring):
    for garbage in (b"", b"\x01", b"\x02" + b"x" * 60, os.urandom(80), "not bytes"):
        with pytest.raises(CredentialUnavailable):
            keyring.decrypt(garbage, CTX)  # type: ignore[arg-type]


def test_relabelled_key_id_fails():
    # The keyring knows both keys; a blob made with k1 is relabelled as made with k2.
    keyring = Keyring({"k1": os.urandom(32), "k2": os.urandom(32)}, "k1")
    blob = keyring.encrypt("tok", CTX)
    with pytest.raises(CredentialUnavailable):
        keyring.decrypt(blob.replace(b"k1", b"k2", 1), CTX)


def test_unknown_key_id_fails_closed_without_trying_other_keys(keyring):
    blob = keyring.encrypt("tok", CTX)
    stranger = Keyring.generate()
    with pytest.raises(CredentialUnavailable, match="not in the keyring"):
        stranger.decrypt(blob, CTX)


def test_error_messages_never_contain_the_plaintext(keyring):
    blob = keyring.encrypt("PLAINTEXT-MARKER", CTX)
    with pytest.raises(CredentialUnavailable) as info:
        keyring.decrypt(blob[:-1], CTX)
    assert "PLAINTEXT-MARKER" not in str(info.value)


def test_secret_masks_itself():
    secret = Secret("hunter2-token")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret) and "hunter2" not in f"{secret}"
    assert "hunter2" not in repr([secret]) and "hunter2" not in repr({"k": secret})
    assert secret.reveal() == "hunter2-token"
    assert secret == Secret("hunter2-token") and secret != Secret("other")
    assert secret.fingerprint == fingerprint("hunter2-token")
    with pytest.raises(TypeError):
        hash(secret)


def test_fingerprint_is_8_hex():
    assert fingerprint("x") == "2d711642"
    assert fingerprint("abc") != fingerprint("abd")


# --- the key file -------------------------------------------------------------------------------------


def test_key_file_is_created_0600_in_a_0700_directory(tmp_path):
    path = tmp_path / "conf" / "switchboard" / "store.key"
    keyring = Keyring.from_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    document = json.loads(path.read_text())
    assert document["active"] == keyring.active_id
    assert len(base64.b64decode(document["keys"][keyring.active_id])) == 32


def test_key_file_is_reused_not_regenerated(tmp_path):
    path = tmp_path / "store.key"
    first = Keyring.from_file(path)
    blob = first.encrypt("tok", CTX)
    second = Keyring.from_file(path)
    assert second.active_id == first.active_id
    assert second.decrypt(blob, CTX).reveal() == "tok"


def test_a_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "store.key"
    Keyring.from_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        Keyring.from_file(path)


def test_a_key_file_owned_by_another_user_is_refused_16_7(tmp_path, monkeypatch):
    """Mode 0600 is not enough: its owner can read or swap our keys. As root the file really changes
    hands; otherwise this process pretends to be another user (it cannot give a file away)."""
    path = tmp_path / "store.key"
    Keyring.from_file(path)
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)  # nobody
    else:
        real = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: real + 1)
    with pytest.raises(ConfigurationError, match="owned by another user") as refused:
        Keyring.from_file(path)
    assert "chown" in refused.value.hint


def test_a_corrupt_key_file_is_refused_without_echoing_it(tmp_path):
    path = tmp_path / "store.key"
    path.write_text('{"format": "switchboard-keyring-1", "active": "k", "keys": {"k": "c2hvcnQ="}}')
    os.chmod(path, 0o600)
    with pytest.raises(ConfigurationError) as info:
        Keyring.from_file(path)
    assert "c2hvcnQ" not in str(info.value)


def test_rotation_keeps_old_keys_until_retired(tmp_path):
    path = tmp_path / "store.key"
    keyring = Keyring.from_file(path)
    old = keyring.active_id
    blob = keyring.encrypt("tok", CTX)
    new = keyring.rotate()
    assert keyring.active_id == new != old
    assert set(keyring.key_ids) == {old, new}
    assert keyring.decrypt(blob, CTX).reveal() == "tok"
    assert key_id_of(keyring.encrypt("tok", CTX)) == new
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keyring.retire([old, new]) == (old,)  # the active key is never retired
    with pytest.raises(CredentialUnavailable):
        keyring.decrypt(blob, CTX)


def test_another_process_rotation_is_picked_up(tmp_path):
    path = tmp_path / "store.key"
    here, there = Keyring.from_file(path), Keyring.from_file(path)
    new = there.rotate()
    blob = there.encrypt("tok", CTX)
    # An unknown key id makes the keyring re-read its file before failing.
    assert here.decrypt(blob, CTX).reveal() == "tok"
    assert here.active_id == new


def test_switchboard_key_as_base64_of_one_key():
    raw = os.urandom(32)
    keyring = Keyring.from_settings(
        Settings(store_path=None, key_file=None, key=base64.b64encode(raw).decode())
    )  # type: ignore[arg-type]
    again = Keyring.from_value(base64.urlsafe_b64encode(raw).decode())
    assert keyring.active_id == again.active_id and keyring.active_id.startswith("env-")
    assert again.decrypt(keyring.encrypt("tok", CTX), CTX).reveal() == "tok"
    assert not keyring.editable
    with pytest.raises(ConfigurationError, match="SWITCHBOARD_KEY"):
        keyring.rotate()


def test_switchboard_key_as_a_keyring_document():
    a, b = os.urandom(32), os.urandom(32)
    value = json.dumps(
        {
            "format": "switchboard-keyring-1",
            "active": "new",
            "keys": {"old": base64.b64encode(a).decode(), "new": base64.b64encode(b).decode()},
        }
    )
    keyring = Keyring.from_value(value)
    assert keyring.active_id == "new" and set(keyring.key_ids) == {"old", "new"}


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not-base64!",
        base64.b64encode(b"short").decode(),
        '{"format": "other"}',
        '{"format": "switchboard-keyring-1", "active": "x", "keys": {}}',
    ],
)
def test_bad_switchboard_key_values_are_refused_without_echo(value):
    with pytest.raises(ConfigurationError) as info:
        Keyring.from_value(value)
    if len(value) > 8:
        assert value not in str(info.value)


def test_keyring_repr_shows_ids_not_keys():
    raw = os.urandom(32)
    keyring = Keyring({"k1": raw}, "k1")
    assert base64.b64encode(raw).decode() not in repr(keyring) and repr(raw) not in repr(keyring)
    assert "k1" in repr(keyring)
