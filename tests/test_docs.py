"""The documentation lists every stable code the code can produce."""

from __future__ import annotations

import pytest

from lgsp_adapter.diagnostics import WarningCode
from lgsp_adapter.errors import ErrorCode
from tests.conftest import PROJECT

ERRORS_DOC = (PROJECT / "docs" / "errors.md").read_text()


@pytest.mark.parametrize("code", [*ErrorCode, *WarningCode], ids=str)
def test_every_code_is_documented(code: str) -> None:
    assert f"`{code}`" in ERRORS_DOC
