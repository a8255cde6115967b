"""Header values as every writer writes and every reader reads them."""

from __future__ import annotations

import pytest

from flightrec.contracts.headers import (
    COT_KIND,
    TRACEPARENT,
    header_value,
    parse_traceparent,
    read_traceparent,
    traceparent,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_traceparent_is_w3c_sampled_and_reads_back() -> None:
    value = traceparent(TRACE, SPAN)
    assert value == b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert parse_traceparent([(COT_KIND, b"THOUGHT"), (TRACEPARENT, value)]) == (TRACE, SPAN)


def test_traceparent_name_and_hex_case_do_not_matter() -> None:
    upper = f"00-{TRACE.upper()}-{SPAN.upper()}-01".encode()
    assert parse_traceparent([("TraceParent", upper)]) == (TRACE, SPAN)


@pytest.mark.parametrize(
    "value",
    [
        b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01",  # the all-zero trace id is invalid
        b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # 31 hex digits
        b"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  # not hex
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-" + b"0" * 16 + b"-01",  # all-zero span id
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",  # one-digit flags
        b"0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version not hex
        b"garbage",
    ],
)
def test_an_invalid_traceparent_is_ignored(value: bytes) -> None:
    assert parse_traceparent([(TRACEPARENT, value)]) is None
    assert read_traceparent([(TRACEPARENT, value)]) is None


def test_read_traceparent_is_the_first_valid_header_normalised_flags_kept() -> None:
    unsampled = f" 00-{TRACE.upper()}-{SPAN}-00 ".encode()
    headers = [(TRACEPARENT, b"garbage"), ("TraceParent", unsampled), (TRACEPARENT, b"later")]
    assert read_traceparent(headers) == f"00-{TRACE}-{SPAN}-00"
    assert read_traceparent([(COT_KIND, b"THOUGHT")]) is None


def test_no_headers_no_traceparent() -> None:
    assert parse_traceparent(None) is None
    assert parse_traceparent([(TRACEPARENT, None)]) is None
    assert read_traceparent(None) is None


def test_header_value_reads_pairs_and_mappings() -> None:
    pairs: list[tuple[str, bytes | str | None]] = [
        ("other", b"x"),
        (COT_KIND, None),
        (COT_KIND, b"DECISION"),
        (COT_KIND, b"THOUGHT"),
    ]
    assert header_value(pairs, COT_KIND) == b"DECISION"
    assert header_value({COT_KIND: "RUN_FAILED"}, COT_KIND) == b"RUN_FAILED"
    assert header_value(pairs, "missing") is None
    assert header_value(None, COT_KIND) is None
