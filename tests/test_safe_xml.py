"""Hostile XML: each attack gets its own precise code, fast, and nothing outside it is read."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.packets import safe_xml
from lgsp_adapter.packets.edxml_codec import parse_edxml
from lgsp_adapter.packets.safe_xml import XmlLimits

SECRET = "lgsp-test-secret-7f3a9c"  # a marker that must never leak


class Tripwire:
    """A real HTTP server on loopback that counts every request an attack makes it receive."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        tripwire = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                tripwire.requests.append(self.path)
                body = f'<!ENTITY leak "{SECRET}">'.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Tripwire:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tripwire() -> Iterator[Tripwire]:
    with Tripwire() as server:
        yield server


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


def refused(raw: bytes, limits: XmlLimits | None = None) -> InvalidPacket:
    with pytest.raises(InvalidPacket) as info:
        parse_edxml(raw, limits)
    error = info.value
    assert SECRET not in str(error)
    assert SECRET not in repr(error.details)
    return error


def billion_laughs() -> bytes:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    return f'<?xml version="1.0"?><!DOCTYPE edXML [{entities}]><edXML>&lol9;</edXML>'.encode()


def test_external_file_entity_is_refused_unread(secret_file: Path) -> None:
    raw = (
        f'<?xml version="1.0"?><!DOCTYPE edXML [<!ENTITY x SYSTEM "file://{secret_file}">]>'
        "<edXML>&x;</edXML>"
    ).encode()
    assert refused(raw).code is ErrorCode.XML_EXTERNAL_ENTITY


def test_external_network_entity_is_refused_without_a_request(tripwire: Tripwire) -> None:
    raw = (
        f'<?xml version="1.0"?><!DOCTYPE edXML [<!ENTITY x SYSTEM "{tripwire.url}/x">]>'
        "<edXML>&x;</edXML>"
    ).encode()
    assert refused(raw).code is ErrorCode.XML_EXTERNAL_ENTITY
    assert tripwire.requests == []


def test_parameter_entity_is_refused_without_a_request(tripwire: Tripwire) -> None:
    raw = (
        f'<?xml version="1.0"?><!DOCTYPE edXML [<!ENTITY % p SYSTEM "{tripwire.url}/p"> %p;]>'
        "<edXML>&leak;</edXML>"
    ).encode()
    assert refused(raw).code is ErrorCode.XML_EXTERNAL_ENTITY
    assert tripwire.requests == []


def test_external_dtd_is_refused_without_a_request(tripwire: Tripwire) -> None:
    raw = f'<?xml version="1.0"?><!DOCTYPE edXML SYSTEM "{tripwire.url}/e.dtd"><edXML/>'.encode()
    assert refused(raw).code is ErrorCode.XML_EXTERNAL_DTD
    assert tripwire.requests == []


def test_external_dtd_file_is_refused_unread(secret_file: Path) -> None:
    raw = f'<!DOCTYPE edXML PUBLIC "-//X//Y" "file://{secret_file}"><edXML/>'.encode()
    assert refused(raw).code is ErrorCode.XML_EXTERNAL_DTD


def test_billion_laughs_is_refused() -> None:
    assert refused(billion_laughs()).code is ErrorCode.XML_ENTITY_DECLARATION


def test_quadratic_blowup_is_refused() -> None:
    big = "A" * 100_000
    raw = (f'<!DOCTYPE edXML [<!ENTITY a "{big}">]><edXML>' + "&a;" * 10_000 + "</edXML>").encode()
    assert refused(raw).code is ErrorCode.XML_ENTITY_DECLARATION


def test_plain_dtd_is_refused() -> None:
    raw = b'<?xml version="1.0"?><!DOCTYPE edXML [<!ELEMENT edXML ANY>]><edXML/>'
    assert refused(raw).code is ErrorCode.XML_DTD_FORBIDDEN


def test_doctype_hidden_behind_a_long_comment_is_found(secret_file: Path) -> None:
    raw = (
        '<?xml version="1.0"?><!--' + "x" * 200_000 + "-->"
        f'<!DOCTYPE edXML [<!ENTITY x SYSTEM "file://{secret_file}">]><edXML>&x;</edXML>'
    ).encode()
    assert refused(raw).code is ErrorCode.XML_EXTERNAL_ENTITY


def test_doctype_in_utf16_is_found(secret_file: Path) -> None:
    text = f'<!DOCTYPE edXML [<!ENTITY x SYSTEM "file://{secret_file}">]><edXML>&x;</edXML>'
    assert refused(text.encode("utf-16")).code is ErrorCode.XML_EXTERNAL_ENTITY


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        # UTF-7 spells "<!DOCTYPE" in plain ASCII letters: a DOCTYPE no byte scan would see.
        (b'<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE edXML+AD4-<edXML/>', "utf-7"),
        ("<edXML/>".encode("utf-32"), "UTF-32"),
        ("<edXML/>".encode("utf-32-le"), "UTF-32"),
        ("<edXML/>".encode("utf-32-be"), "UTF-32"),
        ('<?xml version="1.0"?><edXML/>'.encode("cp500"), "EBCDIC"),
        (b'<?xml version="1.0" encoding="ISO-2022-JP"?><edXML/>', "iso-2022-jp"),
        ('<?xml version="1.0" encoding="UTF-8"?><edXML/>'.encode("utf-16"), "utf-8"),
    ],
)
def test_encodings_we_cannot_read_as_libxml2_does_are_refused(raw: bytes, encoding: str) -> None:
    error = refused(raw)
    assert error.code is ErrorCode.XML_UNSUPPORTED_ENCODING
    assert error.details == {"encoding": encoding}


@pytest.mark.parametrize(
    "raw",
    [
        # windows-1258 writes Vietnamese with combining tones: ộ is ô and a combining dot below.
        '<?xml version="1.0" encoding="windows-1258"?><edXML>Hà N\u00f4\u0323i</edXML>'.encode(
            "cp1258"
        ),
        '<?xml version="1.0" encoding="UTF-16"?><edXML>Hà Nội</edXML>'.encode("utf-16"),
        '<?xml version="1.0" encoding="UTF-16"?><edXML>Hà Nội</edXML>'.encode("utf-16-le"),
        '<?xml version="1.0" encoding="UTF-16"?><edXML>Hà Nội</edXML>'.encode("utf-16-be"),
        b"\xef\xbb\xbf<edXML>H\xc3\xa0 N\xe1\xbb\x99i</edXML>",
    ],
)
def test_encodings_we_read(raw: bytes) -> None:
    root = safe_xml.parse(raw, XmlLimits())
    assert unicodedata.normalize("NFC", root.text or "") == "Hà Nội"


@pytest.mark.parametrize(
    ("blanks", "code"), [(600, "xml.unsupported_encoding"), (6000, "xml.malformed")]
)
def test_declaration_padded_with_blanks_is_still_read(blanks: int, code: str) -> None:
    raw = (
        b'<?xml version="1.0"' + b" " * blanks + b'encoding="UTF-7"?>'
        b'+ADw-!DOCTYPE edXML SYSTEM "file:///dev/stdin"><edXML/>'
    )
    assert refused(raw).code == code


def test_entity_value_holding_a_bracket_does_not_hide_the_next_entity(secret_file: Path) -> None:
    raw = (
        f'<!DOCTYPE edXML [<!ENTITY a "]>"><!ENTITY b SYSTEM "file://{secret_file}">]>'
        "<edXML>&b;</edXML>"
    ).encode()
    assert refused(raw).code is ErrorCode.XML_EXTERNAL_ENTITY


def test_outside_resources_are_refused_even_past_the_prolog_check(
    monkeypatch: pytest.MonkeyPatch, secret_file: Path
) -> None:
    # Defence in depth: with the prolog check switched off, the parser's resolver still answers
    # libxml2 with nothing and the packet is refused.
    monkeypatch.setattr(safe_xml, "check_prolog", lambda data: None)
    raw = f'<!DOCTYPE edXML SYSTEM "{secret_file}"><edXML/>'.encode()
    assert refused(raw).code is ErrorCode.XML_EXTERNAL_DTD


def test_undeclared_entity_is_malformed() -> None:
    assert refused(b"<edXML>&x;</edXML>").code is ErrorCode.XML_MALFORMED


def test_xinclude_is_never_processed(secret_file: Path) -> None:
    # XInclude is only acted on when asked for; we never ask, so this is a wrong root at most.
    raw = (
        '<edXML xmlns:xi="http://www.w3.org/2001/XInclude">'
        f'<xi:include href="file://{secret_file}" parse="text"/></edXML>'
    ).encode()
    assert refused(raw).code is ErrorCode.EDXML_WRONG_ROOT


def test_oversize_is_refused_before_parsing() -> None:
    raw = b"<edXML>" + b"A" * 2000 + b"</edXML>"
    error = refused(raw, XmlLimits(max_bytes=1000))
    assert error.code is ErrorCode.XML_TOO_LARGE
    assert error.details == {"size_bytes": len(raw), "max_bytes": 1000}


def test_default_limit_is_50_mib() -> None:
    raw = b"<edXML>" + b"A" * (50 * 1024 * 1024) + b"</edXML>"
    assert refused(raw).code is ErrorCode.XML_TOO_LARGE


@pytest.mark.parametrize("depth", [65, 2_000, 100_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    raw = b"<a>" * depth + b"</a>" * depth
    assert refused(raw).code is ErrorCode.XML_TOO_DEEP


def test_depth_limit_is_configurable() -> None:
    raw = b"<a>" * 10 + b"</a>" * 10
    safe_xml.parse(raw, XmlLimits(max_depth=10))
    assert refused(raw, XmlLimits(max_depth=9)).code is ErrorCode.XML_TOO_DEEP


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   \n",
        b"\x00\x01\x02binary",
        b'{"kind": "edoc"}',
        b"<edXML><unclosed></edXML>",
        b"<edXML>\xff\xfe invalid utf-8</edXML>",
        b'<?xml version="1.0" encoding="UTF-8"?><edXML>caf\xe9</edXML>',
    ],
)
def test_non_xml_is_malformed(raw: bytes) -> None:
    assert refused(raw).code is ErrorCode.XML_MALFORMED


def test_large_attachment_beyond_libxml2_default_text_cap_is_read() -> None:
    # libxml2 refuses text nodes over 10,000,000 bytes unless huge_tree is on: 12 MB here.
    big = b"QUJD" * 3_000_000
    raw = b'<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><x>' + big + b"</x></edXML>"
    root = safe_xml.parse(raw, XmlLimits())
    assert len(root[0].text or "") == len(big)


STRACE = shutil.which("strace")
HOSTILE_WITH_FILES = [
    '<!DOCTYPE edXML SYSTEM "file://{path}"><edXML/>',
    '<!DOCTYPE edXML SYSTEM "{path}"><edXML/>',
    '<!DOCTYPE edXML [<!ENTITY x SYSTEM "file://{path}">]><edXML>&x;</edXML>',
    '<!DOCTYPE edXML [<!ENTITY % p SYSTEM "file://{path}"> %p;]><edXML/>',
    '<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE edXML SYSTEM +ACI-{path}+ACI-+AD4-<x/>',
    '<?xml version="1.0" encoding="windows-1258"?><!DOCTYPE edXML SYSTEM "{path}"><edXML/>',
    # Blanks that push the declared encoding past a short read of the prolog.
    '<?xml version="1.0"' + " " * 600 + 'encoding="UTF-7"?>+ADw-!DOCTYPE edXML SYSTEM "{path}">',
    '<?xml version="1.0"' + " " * 6000 + 'encoding="UTF-7"?>+ADw-!DOCTYPE edXML SYSTEM "{path}">',
    '<edXML xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="{path}"/></edXML>',
]


@pytest.mark.skipif(STRACE is None, reason="strace is not installed (apt-get install strace)")
def test_no_hostile_packet_makes_the_process_touch_a_file(
    tmp_path: Path, secret_file: Path
) -> None:
    # The strongest evidence that nothing outside the input is read: the kernel's own record of
    # every file the parsing process opens or looks at.
    packets = [tmp_path / f"hostile-{i}.xml" for i in range(len(HOSTILE_WITH_FILES))]
    for packet, template in zip(packets, HOSTILE_WITH_FILES, strict=True):
        packet.write_bytes(template.format(path=secret_file).encode())
    script = (
        "import sys\n"
        "from lgsp_adapter.packets.edxml_codec import parse_edxml\n"
        "from lgsp_adapter.errors import InvalidPacket\n"
        "for name in sys.argv[1:]:\n"
        "    data = open(name, 'rb').read()\n"
        "    try:\n"
        "        parse_edxml(data)\n"
        "    except InvalidPacket as exc:\n"
        "        print(exc.code)\n"
    )
    trace = tmp_path / "trace.txt"
    result = subprocess.run(
        [
            str(STRACE),
            "-f",
            "-qq",
            "-o",
            str(trace),
            "-e",
            "trace=%file",
            sys.executable,
            "-c",
            script,
            *map(str, packets),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    refused_codes = result.stdout.split()
    assert len(refused_codes) == len(packets)  # every one refused
    assert str(secret_file) not in trace.read_text()
    assert all(str(p) in trace.read_text() for p in packets)  # the trace did see our own reads
