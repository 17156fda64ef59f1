from __future__ import annotations

import pytest

from lgsp_adapter.tax_ids import normalise_plate, normalise_tax_code, plate_province


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        ("0100109106", "0100109106"),  # Viettel
        ("0100107518", "0100107518"),  # Vietnam Airlines
        ("0101248141", "0101248141"),  # FPT
        ("0100684378", "0100684378"),  # VNPT
        (" 0100109106 ", "0100109106"),
        ("0100109106-001", "0100109106-001"),  # a branch
        ("0100109106001", "0100109106-001"),
        ("038085001234", "038085001234"),  # a citizen ID used as tax code since 2025
    ],
)
def test_valid_tax_codes_are_written_one_way(raw: str, written: str) -> None:
    assert normalise_tax_code(raw) == written


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("0100109107", "checksum"),  # Viettel with the last digit changed
        ("010010910", "length"),
        ("01001091060", "length"),
        ("ABCDEFGHIJ", "valid"),
        ("", "length"),
    ],
)
def test_invalid_tax_codes_say_why(raw: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        normalise_tax_code(raw)


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("36A-123.45", "36A12345"),
        ("36a 123.45", "36A12345"),
        ("36A-1234", "36A1234"),
        ("29LD-123.45", "29LD12345"),
        ("51F1-234.56", "51F123456"),
    ],
)
def test_plates_are_normalised_keeping_the_province(raw: str, normal: str) -> None:
    assert normalise_plate(raw) == normal
    assert plate_province(raw) == raw[:2]


@pytest.mark.parametrize("raw", ["", "ABC-123", "3-123.45", "36-123.45", "36A-12"])
def test_non_plates_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="plate"):
        normalise_plate(raw)
