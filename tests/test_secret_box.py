"""Sealed secrets: the axis systems' HMAC keys, usable again, useless without their key file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lgsp_adapter.errors import ErrorCode, FatalError, PermanentError
from lgsp_adapter.registry.secret_box import SecretBox


def test_a_sealed_secret_opens_with_the_same_key_file_only(tmp_path: Path) -> None:
    box = SecretBox.at(tmp_path / "secrets.key")
    sealed = box.seal("bí mật của hệ thống")
    assert "bí mật" not in sealed
    assert sealed != box.seal("bí mật của hệ thống")  # each sealing is its own
    assert SecretBox.at(tmp_path / "secrets.key").open(sealed) == "bí mật của hệ thống"
    with pytest.raises(PermanentError, match="does not open with this key") as caught:
        SecretBox.at(tmp_path / "other.key").open(sealed)
    assert caught.value.code is ErrorCode.REGISTRY_INVALID


def test_the_key_file_is_made_readable_by_its_owner_only(tmp_path: Path) -> None:
    SecretBox.at(tmp_path / "secrets.key")
    assert (tmp_path / "secrets.key").stat().st_mode & 0o777 == 0o600


def test_a_changed_sealed_secret_does_not_open(tmp_path: Path) -> None:
    box = SecretBox.at(tmp_path / "secrets.key")
    sealed = box.seal("secret")
    changed = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(PermanentError, match="changed since"):
        box.open(changed)
    with pytest.raises(PermanentError):
        box.open("not a sealed secret at all ✗")


def test_a_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    SecretBox.at(path)
    path.chmod(0o644)
    with pytest.raises(FatalError, match="chmod 600") as caught:
        SecretBox.at(path)
    assert caught.value.code is ErrorCode.CONFIG_INVALID


def test_a_link_in_place_of_the_key_file_is_refused(tmp_path: Path) -> None:
    SecretBox.at(tmp_path / "real.key")
    os.symlink(tmp_path / "real.key", tmp_path / "secrets.key")
    with pytest.raises(FatalError, match="it is a link"):
        SecretBox.at(tmp_path / "secrets.key")


def test_a_damaged_key_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    path.write_bytes(b"")  # a crash between making the file and writing the key
    path.chmod(0o600)
    with pytest.raises(FatalError, match="does not hold a secret box key"):
        SecretBox.at(path)
