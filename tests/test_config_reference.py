"""docs/configuration.md is what the settings model says today."""

from __future__ import annotations

from pathlib import Path

from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.daemon.config_reference import reference

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_the_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == reference(), "run make config-reference"


def test_every_section_key_is_in_it_with_its_variable() -> None:
    text = reference()
    for section, field in Settings.model_fields.items():
        model = field.annotation
        for key in getattr(model, "model_fields", {}):
            assert f"`LGSP_{section.upper()}__{key.upper()}`" in text, (section, key)
