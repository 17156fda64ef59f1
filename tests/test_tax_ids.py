from __future__ import annotations

import pytest

from lgsp_adapter.packets.tax_ids import normalise_plate, normalise_tax_code, plate_province


@pytest.mark.parametrize(
    "code",
    [
        "0100109106",  # Viettel
        "0100107518",  # Vietnam Airlines
        "0101248141",  # FPT
        "0100684378",  # VNPT
        "0100109106-001",  # a branch
        "038085001234",  # a citizen ID used as tax code since 2025
    ],
)
def test_valid_tax_codes_are_kept_as_written(code: str) -> None:
    assert normalise_tax_code(code) == code


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("0100109107", "not a valid tax code"),  # Viettel with the last digit changed
        ("0100109106-01", "not written as a tax code"),  # a mistyped branch is not a citizen ID
        ("0100109106001", "not written as a tax code"),  # branches carry their dash
        ("010010910", "not written"),
        (" 0100109106", "not written"),
        ("0101.248.141", "not written"),
        ("٠٣٨٠٨٥٠٠١٢٣٤", "not written"),  # Arabic-Indic digits are digits to \\d, not to us
        ("", "not written"),
    ],
)
def test_invalid_tax_codes_say_why(raw: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        normalise_tax_code(raw)


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("36A-123.45", "36A12345"),
        ("36A12345", "36A12345"),
        ("36A-1234", "36A1234"),
        ("29LD-123.45", "29LD12345"),
        ("51F1-234.56", "51F123456"),
    ],
)
def test_plates_are_normalised_keeping_the_province(raw: str, normal: str) -> None:
    assert normalise_plate(raw) == normal
    assert plate_province(raw) == raw[:2]


@pytest.mark.parametrize(
    "raw",
    ["", "ABC-123", "3-123.45", "36-123.45", "36A-12", "00A-000.00", "36a-123.45", "36C 456.78"],
)
def test_non_plates_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="plate"):
        normalise_plate(raw)
