"""The documentation lists every stable code the code can produce."""

from __future__ import annotations

import pytest

from lgsp_adapter.errors import ErrorCode
from lgsp_adapter.packets.diagnostics import WarningCode
from tests.conftest import PROJECT

ERRORS_DOC = (PROJECT / "docs" / "errors.md").read_text()


@pytest.mark.parametrize("code", [*ErrorCode, *WarningCode], ids=str)
def test_every_code_is_documented(code: str) -> None:
    assert f"`{code}`" in ERRORS_DOC


def test_the_documented_leaf_example_is_what_the_code_hashes() -> None:
    """docs/audit.md shows an entry's canonical encoding and leaf hash; they must stay true."""
    import hashlib
    import json
    import re

    from lgsp_adapter.audit.entry import canonical_entry

    text = (PROJECT / "docs" / "audit.md").read_text()
    encoded = re.search(r'```\n(\{"at".*\})\n```', text)
    digest = re.search(r"has the leaf hash `([0-9a-f]{64})`", text)
    assert encoded is not None
    assert digest is not None
    fields = {k: v for k, v in json.loads(encoded.group(1)).items() if k != "v"}
    assert canonical_entry(fields) == encoded.group(1).encode()
    assert hashlib.sha256(b"\x00" + encoded.group(1).encode()).hexdigest() == digest.group(1)
