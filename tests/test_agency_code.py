from __future__ import annotations

import pytest

from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.packets.agency_code import AgencyCode


def test_parse_gives_parts_and_canonical_text() -> None:
    code = AgencyCode.parse("000.02.05.H56")
    assert (code.root, code.level2, code.level3, code.level4) == ("H56", 5, 2, 0)
    assert str(code) == "000.02.05.H56"


@pytest.mark.parametrize(
    ("text", "level"),
    [("000.00.00.H56", 1), ("000.00.05.H56", 2), ("000.02.05.H56", 3), ("123.02.05.H56", 4)],
)
def test_level_is_the_lowest_non_zero_part(text: str, level: int) -> None:
    assert AgencyCode.parse(text).level == level


def test_parent_chain_zeroes_the_lowest_part_up_to_the_root() -> None:
    code = AgencyCode.parse("123.02.05.H56")
    assert [str(a) for a in code.ancestors()] == ["000.02.05.H56", "000.00.05.H56", "000.00.00.H56"]
    assert str(code.top) == "000.00.00.H56"
    assert AgencyCode.parse("000.00.00.H56").parent is None


def test_post_2025_commune_directly_under_its_province() -> None:
    commune = AgencyCode.parse("000.21.00.H56")
    assert commune.level == 3
    assert str(commune.parent) == "000.00.00.H56"


def test_ancestry() -> None:
    province = AgencyCode.parse("000.00.00.H56")
    assert province.is_ancestor_of(AgencyCode.parse("000.02.05.H56"))
    assert not AgencyCode.parse("000.00.00.H41").is_ancestor_of(AgencyCode.parse("000.02.05.H56"))
    assert not province.is_ancestor_of(province)


def test_ordering_puts_each_body_before_its_units_and_groups_by_root() -> None:
    codes = ["000.00.05.H56", "000.00.00.H56", "000.00.00.G22", "001.02.05.H56", "000.02.05.H56"]
    ordered = sorted(AgencyCode.parse(c) for c in codes)
    assert [str(c) for c in ordered] == [
        "000.00.00.G22",
        "000.00.00.H56",
        "000.00.05.H56",
        "000.02.05.H56",
        "001.02.05.H56",
    ]


def test_root_kind_from_the_letter() -> None:
    assert AgencyCode.parse("000.00.00.G12").root_kind == "ministry or government body"
    assert AgencyCode.parse("000.00.00.H56").root_kind == "provincial People's Committee"
    assert AgencyCode.parse("000.00.00.K56").root_kind == "provincial People's Council"
    assert AgencyCode.parse("000.00.00.Z56").root_kind == "unknown"


@pytest.mark.parametrize(
    "text", ["28.22.H17", "vxp.saas.03", "000.00.00.h56", " 000.00.00.H56", "000.00.00.H5", ""]
)
def test_strict_parse_refuses_anything_but_the_standard_shape(text: str) -> None:
    with pytest.raises(PermanentError) as info:
        AgencyCode.parse(text)
    assert info.value.code is ErrorCode.AGENCY_CODE_INVALID


def test_lenient_read_reports_instead_of_raising() -> None:
    assert AgencyCode.read("000.00.00.H56") == (AgencyCode.parse("000.00.00.H56"), None)
    code, problem = AgencyCode.read("28.22.H17")
    assert code is None
    assert problem is not None
    assert "28.22.H17" in problem


def test_lenient_read_fixes_only_blanks_and_case_and_says_so() -> None:
    code, problem = AgencyCode.read(" 000.00.00.h56\n")
    assert code == AgencyCode.parse("000.00.00.H56")
    assert problem is not None
    assert "read as 000.00.00.H56" in problem


@pytest.mark.parametrize("text", ["０００.００.１２.H56", "٠٠٠.٠٠.١٢.H56"])
def test_only_ascii_digits_make_a_code(text: str) -> None:
    # \d matches full-width and Arabic-Indic digits too; a code that only looks right is not one.
    with pytest.raises(PermanentError):
        AgencyCode.parse(text)
    assert AgencyCode.read(text).code is None
