"""Key files: made whole or not at all, read only when nobody but their owner can read them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lgsp_adapter.audit.key_file import create_private, read_private
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.errors import ErrorCode, FatalError


def test_a_key_file_is_made_once_owner_only_and_leaves_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "a.key"
    assert create_private(path, b"first")
    assert not create_private(path, b"second")  # the first one made stays
    assert read_private(path, "the key") == b"first"
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.key"]  # no partial files


@pytest.mark.parametrize(
    ("prepare", "problem"),
    [
        (lambda p: (p.write_bytes(b"k"), p.chmod(0o644)), "only its owner can read"),
        (lambda p: (p.write_bytes(b"k"), p.chmod(0o640)), "only its owner can read"),
        (lambda p: os.symlink(p.with_name("elsewhere"), p), "it is a link"),
        (lambda p: p.mkdir(), "must be a regular file"),
        (lambda p: None, "No such file"),
    ],
)
def test_a_key_file_that_may_have_been_read_or_swapped_is_refused(
    tmp_path: Path, prepare: object, problem: str
) -> None:
    path = tmp_path / "a.key"
    prepare(path)  # type: ignore[operator]
    with pytest.raises(FatalError, match=problem) as caught:
        read_private(path, "the key")
    assert caught.value.code is ErrorCode.CONFIG_INVALID


def test_the_audit_signing_key_is_made_and_read_as_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    made = LogKey.load_or_create(path, "lgsp-adapter/test")
    assert path.stat().st_mode & 0o777 == 0o600
    assert LogKey.load(path, "lgsp-adapter/test").verifier == made.verifier
    path.chmod(0o644)
    with pytest.raises(FatalError, match="chmod 600"):
        LogKey.load(path, "lgsp-adapter/test")
