"""The translator plugins: found by entry point, round-tripping their examples, and naming the
row and column (or field) of what they cannot translate."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from datetime import datetime
from pathlib import Path

import pytest

from lgsp_adapter.errors import ErrorCode, LgspError
from lgsp_adapter.packets.edxml_codec import parse_edxml
from lgsp_adapter.packets.edxml_model import EdocPacket
from lgsp_adapter.translators import (
    Envelope,
    TranslationError,
    find,
    installed,
    translate_to_packet,
)
from tests.conftest import EXAMPLES

BADGES = (EXAMPLES / "translators" / "vehicle-badges.csv").read_bytes()
DOCUMENT = (EXAMPLES / "translators" / "van-ban.json").read_bytes()
BADGE_PACKET = json.loads((EXAMPLES / "tax-transport-vehicle-badge.json").read_bytes())
ENVELOPE = Envelope(
    sender=BADGE_PACKET["sender"],
    recipients=BADGE_PACKET["recipients"],
    reference=BADGE_PACKET["reference"],
    created_at=datetime.fromisoformat(BADGE_PACKET["created_at"]),
)
HEADER = BADGES.decode("utf-8-sig").splitlines()[0]
GOOD_ROW = BADGES.decode("utf-8-sig").splitlines()[1]


def test_both_translators_are_installed_as_entry_points() -> None:
    assert set(installed()) >= {"badges-csv", "vn-document-json"}
    with pytest.raises(LgspError) as raised:
        find("no-such-format")
    assert raised.value.code is ErrorCode.TRANSLATOR_UNKNOWN


def test_the_badge_csv_becomes_the_badge_packet_and_back() -> None:
    translator = find("badges-csv")
    packet = translator.to_packet(BADGES, ENVELOPE)
    made = json.loads(packet)
    expected = {**BADGE_PACKET}
    for record in expected["records"]:  # plates are kept bare, as the packet model keeps them
        record["plate"] = record["plate"].replace("-", "").replace(".", "")
    assert made == expected
    assert translator.from_packet(packet) == BADGES  # the department's own file again


def test_a_bad_tax_code_in_row_57_is_named_by_row_and_column() -> None:
    rows = [HEADER] + [
        GOOD_ROW.replace("PH-36-2026-004512-I", f"PH-36-2026-{n:06d}-I") for n in range(58)
    ]
    rows[56] = rows[56].replace("0101248141", "0101248142")  # row 57: a wrong check digit
    data = ("\r\n".join(rows) + "\r\n").encode()
    with pytest.raises(TranslationError) as raised:
        find("badges-csv").to_packet(data, ENVELOPE)
    assert raised.value.message.startswith("row 57, Mã số thuế:")
    assert raised.value.details == {
        "row": 57,
        "column": "Mã số thuế",
        "field": "holder_tax_code",
    }
    assert raised.value.code is ErrorCode.TRANSLATION_FAILED


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: r.replace("20/11/2026,,", "31/02/2026,,", 1),
            "row 2, Ngày sự kiện: '31/02/2026'",
        ),
        (lambda r: r.replace("Cấp mới", "Cấp lại"), "row 2, Sự kiện: 'Cấp lại' is not one of"),
        (lambda r: r.replace(",29,", ",hai chín,"), "row 2, Số chỗ: 'hai chín' is not a whole"),
        (lambda r: r + ",extra", "row 2: 15 cells under 14 columns"),
    ],
)
def test_bad_cells_are_named(change: object, message: str) -> None:
    data = f"{HEADER}\r\n{change(GOOD_ROW)}\r\n".encode()  # type: ignore[operator]
    with pytest.raises(TranslationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        find("badges-csv").to_packet(data, ENVELOPE)


def test_a_csv_that_is_not_the_export_is_refused() -> None:
    translator = find("badges-csv")
    with pytest.raises(TranslationError, match="row 1: unknown columns 'Colour'"):
        translator.to_packet(f"{HEADER},Colour\r\n".encode(), ENVELOPE)
    with pytest.raises(TranslationError, match="not UTF-8"):
        translator.to_packet(HEADER.encode("utf-16"), ENVELOPE)
    with pytest.raises(TranslationError, match="no rows"):
        translator.to_packet(f"{HEADER}\r\n".encode(), ENVELOPE)


def test_the_vietnamese_document_becomes_edxml_and_back() -> None:
    translator = find("vn-document-json")
    edxml = translator.to_packet(DOCUMENT, Envelope(sender="000.00.00.H56"))
    packet = parse_edxml(edxml).packet
    assert isinstance(packet, EdocPacket)
    header = packet.envelope.header.message_header
    assert header.document_id == "000.00.00.H56,2026/11/20,1234/UBND-KSTTHC"
    assert [o.organ_id for o in header.recipients] == ["000.00.12.H56", "000.21.00.H56"]
    assert packet.attachments[0].read_bytes() == "Kính gửi: các cơ quan, đơn vị.\n".encode()
    assert translator.from_packet(edxml) == DOCUMENT


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.pop("noi_nhan"), "noi_nhan"),
        (lambda d: d["noi_nhan"][1].pop("ma"), "noi_nhan.1.ma"),
        (lambda d: d.update(loai="khac"), "loai"),
        (lambda d: d["tep_dinh_kem"][0].update(noi_dung_base64="%%%"), "tep_dinh_kem.0"),
        (lambda d: d.update(mau="đỏ"), "mau"),
    ],
)
def test_a_bad_document_field_is_named(change: object, field: str) -> None:
    document = json.loads(DOCUMENT)
    change(document)  # type: ignore[operator]
    with pytest.raises(TranslationError) as raised:
        find("vn-document-json").to_packet(json.dumps(document).encode(), Envelope("000.00.00.H56"))
    assert raised.value.message.startswith(field)


def test_a_translator_that_crashes_is_reported_as_its_failure() -> None:
    class Broken:
        name = "broken"
        media_type = "text/plain"
        description = "raises"

        def to_packet(self, data: bytes, envelope: Envelope) -> bytes:
            return bytes(len(data) // 0)

        def from_packet(self, packet: bytes) -> bytes:
            raise AssertionError

    with pytest.raises(TranslationError, match="translator broken failed: ZeroDivisionError"):
        translate_to_packet(Broken(), b"x", ENVELOPE)


def test_the_command_translates_and_names_bad_rows(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lgsp_adapter", "translate", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    made = run(
        "badges-csv",
        str(EXAMPLES / "translators" / "vehicle-badges.csv"),
        "--sender",
        "000.00.12.H56",
        "--to",
        "000.56.20.G12",
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["kind"] == "tax-transport/vehicle-badge"
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{HEADER}\n{GOOD_ROW.replace('36B-123.45', 'XX')}\n")
    refused = run("badges-csv", str(bad), "--sender", "000.00.12.H56", "--to", "000.56.20.G12")
    assert refused.returncode == 1
    assert "translation.failed: row 2, Biển số:" in refused.stderr


def test_the_export_s_usual_quirks_are_read_and_doubled_columns_refused() -> None:
    translator = find("badges-csv")
    trailing = f"{HEADER},\r\n{GOOD_ROW},\r\n".encode()  # the empty last column
    assert json.loads(translator.to_packet(trailing, ENVELOPE))["records"][0]["seats"] == 29
    decomposed = unicodedata.normalize("NFD", HEADER)
    assert translator.to_packet(f"{decomposed}\r\n{GOOD_ROW}\r\n".encode(), ENVELOPE)
    doubled = HEADER + ",Biển số"
    with pytest.raises(TranslationError, match="columns given twice: Biển số"):
        translator.to_packet(f"{doubled}\r\n{GOOD_ROW},99A-999.99\r\n".encode(), ENVELOPE)


def test_cells_a_spreadsheet_would_run_are_written_as_text_and_read_back() -> None:
    translator = find("badges-csv")
    packet = json.loads(translator.to_packet(BADGES, ENVELOPE))
    packet["records"][1]["reason"] = '=HYPERLINK("http://x","bấm")'
    csv_bytes = translator.from_packet(json.dumps(packet).encode())
    assert "'=HYPERLINK" in csv_bytes.decode("utf-8-sig")
    again = json.loads(translator.to_packet(csv_bytes, ENVELOPE))
    assert again["records"][1]["reason"] == '=HYPERLINK("http://x","bấm")'


def test_a_translation_must_come_from_the_envelope_s_sender_and_go_where_it_says() -> None:
    document = find("vn-document-json")
    with pytest.raises(TranslationError, match=r"is from .000\.00\.00\.H56., not the sender"):
        translate_to_packet(document, DOCUMENT, Envelope(sender="000.21.00.H56"))
    with pytest.raises(TranslationError, match=r"not to 000\.22\.00\.H56"):
        translate_to_packet(
            document, DOCUMENT, Envelope(sender="000.00.00.H56", recipients=["000.22.00.H56"])
        )
    made = translate_to_packet(document, DOCUMENT, Envelope(sender="000.00.00.H56"))
    assert made.startswith(b"<?xml")
