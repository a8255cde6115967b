"""PII guard: tokens from the contract's PII fields, keyed and stable; scrubbing of
events (free text and JSON text), text and log records."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from pydantic import SecretStr

from flightrec.contracts.events import ToolResult
from flightrec.contracts.schema_files import DEFAULT_SCHEMA_DIR, load_schema_file, pii_fields
from flightrec.contracts.settings import Settings
from flightrec.recorder.log_filter import PiiLogFilter
from flightrec.recorder.pii import PiiGuard, PiiScrubber
from flightrec.testing.runs import synthetic_run, synthetic_trace_id
from flightrec.testing.samples import sample_application

TOKEN_PATTERN = r"^pii:k1:[0-9a-f]{32}$"


@pytest.fixture
def guard() -> PiiGuard:
    return PiiGuard(Settings())


def test_contract_fields_are_tokenised_and_others_kept(guard: PiiGuard) -> None:
    contract = pii_fields(load_schema_file(DEFAULT_SCHEMA_DIR / "loan_application.avsc"))
    assert guard.fields == contract and "national_id" in contract
    application = sample_application()
    view, vault = guard.tokenize(application)
    for name in contract:
        token = view[name]
        assert token != getattr(application, name)
        assert vault[token] == getattr(application, name)
        assert re.match(TOKEN_PATTERN, token)
    assert view["amount"] == application.amount
    assert view["application_id"] == application.application_id
    assert set(vault.values()) == {getattr(application, n) for n in contract}


def test_equal_values_give_equal_tokens_and_keys_matter(guard: PiiGuard) -> None:
    one, _ = guard.tokenize(sample_application())
    two, _ = guard.tokenize(sample_application(application_id="app-2"))
    assert one["national_id"] == two["national_id"]
    other, _ = guard.tokenize(sample_application(national_id="ZZ999999Z"))
    assert other["national_id"] != one["national_id"]
    rotated = PiiGuard(Settings(pii_hmac_key=SecretStr("another-key"), pii_key_id="k2"))
    new, _ = rotated.tokenize(sample_application())
    assert new["national_id"].startswith("pii:k2:")
    assert new["national_id"].split(":")[2] != one["national_id"].split(":")[2]


def test_explicit_field_list_is_honoured() -> None:
    view, vault = PiiGuard(Settings(), ["email"]).tokenize(sample_application())
    assert list(vault.values()) == ["ada@example.org"]
    assert view["applicant_name"] == "Ada Lovelace"


def test_scrub_event_replaces_values_in_free_text_and_json(guard: PiiGuard) -> None:
    application = sample_application(applicant_name='Zoë "Z" Quill')
    view, vault = guard.tokenize(application)
    result = next(e for e in synthetic_run(synthetic_trace_id(5)) if isinstance(e, ToolResult))
    leaky = result.model_copy(
        update={
            # the tool echoed the real name (JSON-escaped, non-ASCII escaped too) and the id
            "result_json": json.dumps({"name": application.applicant_name, "id": "AB123456C"}),
            "error_message": f"bureau says {application.email} unknown",
        }
    )
    clean = guard.scrub_event(leaky, vault)
    dumped = clean.model_dump_json()
    for real in vault.values():
        assert real not in dumped
    assert json.loads(clean.result_json or "") == {
        "name": view["applicant_name"],
        "id": view["national_id"],
    }
    assert clean.error_message == f"bureau says {view['email']} unknown"
    untouched = result.model_copy()
    assert guard.scrub_event(untouched, vault) is untouched


def test_scrub_text_and_recently_seen_values(guard: PiiGuard) -> None:
    view, vault = guard.tokenize(sample_application())
    text = "declined Ada Lovelace (AB123456C)"
    expected = f"declined {view['applicant_name']} ({view['national_id']})"
    assert PiiScrubber().scrub_text(text, vault) == expected  # the vault alone
    assert guard.scrub_text(text) == expected  # remembered from tokenize
    assert guard.scrub_text("nothing personal", vault) == "nothing personal"


def test_log_filter_scrubs_message_args_and_traceback(
    guard: PiiGuard, caplog: pytest.LogCaptureFixture
) -> None:
    view, _ = guard.tokenize(sample_application())
    logger = logging.getLogger("flightrec.test.pii")
    log_filter = PiiLogFilter(guard)
    caplog.handler.addFilter(log_filter)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("applicant %s lives at %s", "Ada Lovelace", "12 St James's Square, London")
            try:
                raise ValueError("bad account GB33BUKB20201555555555")
            except ValueError:
                logger.exception("tool failed")
    finally:
        caplog.handler.removeFilter(log_filter)
    text = caplog.text
    assert "Ada Lovelace" not in text and "GB33BUKB20201555555555" not in text
    assert view["applicant_name"] in text and view["bank_account"] in text
    assert "ValueError" in text


def test_log_filter_attach_reaches_handlers() -> None:
    guard = PiiGuard(Settings())
    guard.tokenize(sample_application())
    logger = logging.getLogger("flightrec.test.attach")
    handler = logging.Handler()
    logger.addHandler(handler)
    log_filter = PiiLogFilter(guard).attach(logger)
    try:
        assert log_filter in handler.filters and log_filter in logger.filters
    finally:
        log_filter.detach()
        logger.removeHandler(handler)
    assert log_filter not in handler.filters


@pytest.mark.parametrize(
    "name", ["Ada Lovelace", 'Zoë "Z" Quill', "O\\Brien\ttab", "Łukasz Żółć", "李小龍 Lee"]
)
@pytest.mark.parametrize(
    "leak",
    [
        lambda real: {"error_message": f"bureau says {real} unknown"},
        lambda real: {"result_json": json.dumps({"name": real})},
        lambda real: {"result_json": json.dumps({"name": real}, ensure_ascii=False)},
        lambda real: {"result_json": json.dumps([json.dumps({"nested": real})])},
    ],
    ids=["text", "json-ascii", "json-utf8", "json-in-json"],
)
def test_may_hold_never_misses_what_scrub_would_replace(
    guard: PiiGuard, name: str, leak: Any
) -> None:
    # The recorder scrubs only events whose canonical text may hold a real
    # value: a miss there would write personal data in clear.
    from flightrec.contracts.chain import canonical_text

    _, vault = guard.tokenize(sample_application(applicant_name=name))
    result = next(e for e in synthetic_run(synthetic_trace_id(5)) if isinstance(e, ToolResult))
    leaky = result.model_copy(update=leak(name))
    assert guard.scrub_event(leaky, vault) != leaky
    assert guard.may_hold(canonical_text(leaky), vault)
    # ... and an event that holds none of them is left alone.
    assert not guard.may_hold(canonical_text(result), vault)
