"""The HTTP API fuzzed from its own OpenAPI document (schemathesis): for every operation, valid
and invalid requests, with and without the right token. Whatever arrives, the daemon answers
without a 5xx, with a status code and a body the document describes.

The daemon is a real process on loopback (schemathesis calls synchronously), on the embedded
bus, serving two agencies, with a client in each role; the operation's tag picks whose token a
request carries, and schemathesis' own checks also try it with none and a wrong one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from lgsp_adapter.http.openapi import document
from tests.test_daemon_process import log_of

PROVINCE, COMMUNE = "000.00.00.H56", "000.21.00.H56"
TOKENS = {
    "agency": "province-office-token-0123456789",
    "integrator": "tinh-integrator-token-0123456789",
    "auditor": "thanh-tra-auditor-token-012345678",
    "operator": "tinh-operator-token-0123456789ab",
}
ROLE_OF_TAG = {
    "packets": "agency",
    "inbox": "agency",
    "agencies": "agency",
    "audit": "auditor",
    "registry": "integrator",
    "operations": "operator",
}
# Operations whose valid requests obey rules across fields, or a standard, that JSON Schema
# cannot say: for these a refusal of a schema-valid request is right, not a finding. Every
# other check still runs on them.
RULES_BEYOND_THE_SCHEMA = {
    ("POST", "/v1/packets"): "edXML per QCVN 102, tax-code check digits, a reply's outcome "
    "and its packet count, a sender the token speaks for, known recipients",
    ("GET", "/v1/audit/entries"): "since before until",
    ("GET", "/v1/audit/export"): "since before until",
    ("GET", "/v1/audit/bundle"): "since before until; a packet or a range",
    ("POST", "/v1/endpoints"): "an agency is not its own parent",
    ("PATCH", "/v1/endpoints/{code}"): "an agency is not its own parent",
    ("POST", "/v1/dead-letters/{packet_id}/{recipient}/drop"): "a reason with a printable "
    "character (Python's sense, not a JSON Schema pattern's)",
}
# Enough to find what breaks while keeping the suite's time: ~30 operations.
EXAMPLES = int(os.environ.get("LGSP_FUZZ_EXAMPLES", "40"))


def _config(tmp: Path) -> Path:
    path = tmp / "fuzz.toml"
    path.write_text(
        f"""
[http]
port = 0
requests_per_second = 100000
burst = 1000000
[store]
path = "{tmp / "fuzz.sqlite3"}"
[delivery]
quick_retries = 0
retry_delays_s = [0.2]
[daemon]
drain_s = 2
[[agencies]]
code = "{PROVINCE}"
name = "Văn phòng UBND tỉnh"
[agencies.endpoint]
mode = "pull"
[[agencies]]
code = "{COMMUNE}"
name = "UBND xã Quảng Phú"
[agencies.endpoint]
mode = "pull"
[[clients]]
name = "province"
token = "{TOKENS["agency"]}"
agencies = ["{PROVINCE}", "{COMMUNE}"]
[[clients]]
name = "tinh-integrator"
token = "{TOKENS["integrator"]}"
role = "integrator"
[[clients]]
name = "thanh-tra"
token = "{TOKENS["auditor"]}"
role = "auditor"
[[clients]]
name = "van-hanh"
token = "{TOKENS["operator"]}"
role = "operator"
"""
    )
    return path


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The daemon's base URL, for the module's tests."""
    config = _config(tmp_path_factory.mktemp("fuzz"))
    with log_of(config).open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "lgsp_adapter", "serve", "--config", str(config)],
            stderr=subprocess.PIPE,
        )
        assert process.stderr is not None
        url = ""
        deadline = time.monotonic() + 30
        while not url and time.monotonic() < deadline:
            line = process.stderr.readline()
            log.write(line)
            if not line:
                break
            if b" on http://" in line:
                url = line.decode().split(" on ", 1)[1].split()[0]
        assert url, "the daemon did not start"
        # The rest goes to the log file, by the process itself, so the pipe cannot fill.
        relay = subprocess.Popen(["cat"], stdin=process.stderr, stdout=log)
        process.stderr.close()
        try:
            yield url
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
            relay.wait(timeout=10)


# The document as the daemon serves it at /v1/openapi.json (tests/test_openapi.py holds the
# two together). Loaded at import: schemathesis' fixture loader does not run on pytest 9.2.
schema = schemathesis.openapi.from_dict(document())


def _bearer(role: str) -> type:
    class Bearer:
        """The token of ``role``, given through schemathesis so that its checks know which
        requests carry it (and which it sent without, or with a wrong one, on purpose)."""

        def get(self, case: schemathesis.Case[Any], ctx: schemathesis.AuthContext) -> str:
            return TOKENS[role]

        def set(
            self, case: schemathesis.Case[Any], token: str, ctx: schemathesis.AuthContext
        ) -> None:
            case.headers["Authorization"] = f"Bearer {token}"

    return Bearer


for _role in TOKENS:
    _tags = [tag for tag, role in ROLE_OF_TAG.items() if role == _role]
    schema.auth(refresh_interval=None).apply_to(tag=_tags)(_bearer(_role))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same requests in every run: a failure reproduces
)
def test_no_request_makes_the_api_fail_or_break_its_document(
    case: schemathesis.Case[Any], daemon: str
) -> None:
    operation = (case.operation.method.upper(), case.operation.path)
    beyond = operation in RULES_BEYOND_THE_SCHEMA
    case.call_and_validate(
        base_url=daemon,
        excluded_checks=[schemathesis.checks.positive_data_acceptance] if beyond else None,
    )
