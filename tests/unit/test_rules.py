"""Data-contract rules: one passing and one failing record per rule, on both CEL
engines (which must agree), plus the start-up checks that keep rules from being
skipped. The registry is confluent-kafka's in-process mock (a ``mock://``
URL); DLQ delivery is covered in tests/integration/test_codec.py (it needs a broker)."""

from __future__ import annotations

import asyncio
import io
import json
import math
import struct
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import RuleMode, RuleSet, Schema, SchemaRegistryClient

from flightrec.contracts.avro_mapping import application_to_avro
from flightrec.contracts.codec import Codec
from flightrec.contracts.errors import ConfigError, RuleViolationError
from flightrec.contracts.rules import ISO_4217, rule_set_for, rule_specs
from flightrec.contracts.schema_files import (
    CONTRACTS,
    contract,
    load_schemas,
    schema_text,
    subject_for,
)
from flightrec.contracts.settings import Settings
from flightrec.testing.samples import sample_application, sample_cot_events

SETTINGS = Settings()


def _client(overrides: dict[str, RuleSet | None] | None = None) -> SchemaRegistryClient:
    client = SchemaRegistryClient.new_client({"url": "mock://rules"})
    schemas = load_schemas()
    for spec in CONTRACTS:
        rule_set = rule_set_for(spec.name, SETTINGS)
        if spec.name == "loan_application":
            # No broker in unit tests: fail with ERROR instead of the DLQ action.
            rules = [r.to_rule(on_failure="ERROR") for r in rule_specs(spec.name)]
            rule_set = RuleSet(migration_rules=None, domain_rules=rules)
        if overrides and spec.name in overrides:
            rule_set = overrides[spec.name]
        client.register_schema(
            subject_for(spec, SETTINGS),
            Schema(schema_text(schemas[spec.name]), "AVRO", rule_set=rule_set),
        )
    return client


@pytest.fixture(scope="module")
def codecs() -> dict[str, Codec]:
    client = _client()
    result = {engine: Codec(SETTINGS, client, cel_engine=engine) for engine in ("fast", "celpy")}
    for codec in result.values():
        codec.start_sync()
    return result


def _decision(**update: Any) -> Any:
    return sample_cot_events()[5].model_copy(update=update)


# (contract, rule, field, passing record, failing record). model_copy does not
# validate, so the failing records can break what pydantic would refuse.
CASES: list[tuple[str, str, str, Any, Any]] = [
    ("loan_application", "application_amount_positive", "amount",
     sample_application(amount=0.01), sample_application(amount=0.0)),
    ("loan_application", "application_currency_iso4217", "currency",
     sample_application(currency="EUR"), sample_application(currency="EUX")),
    ("loan_application", "application_term_bounds", "term_months",
     sample_application(term_months=360), sample_application(term_months=361)),
    ("loan_application", "application_term_bounds", "term_months",
     sample_application(term_months=6), sample_application(term_months=5)),
    ("loan_application", "application_applicant_adult", "applicant_age",
     sample_application(applicant_age=18), sample_application(applicant_age=17)),
    *[
        ("loan_application", f"application_{field}_finite", field,
         sample_application(**{field: 1.0}), sample_application(**{field: bad}))
        for field in ("amount", "annual_income", "monthly_debt_payments", "employment_years")
        for bad in (math.nan, math.inf, -math.inf)
    ],
    ("cot_event", "cot_seq_non_negative", "seq",
     sample_cot_events()[2].model_copy(update={"seq": 0}), sample_cot_events()[2].model_copy(update={"seq": -1})),
    ("cot_event", "cot_trace_id_format", "trace_id",
     sample_cot_events()[2], sample_cot_events()[2].model_copy(update={"trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736"})),
    ("cot_event", "cot_decision_outcome", "decision.outcome_label",
     _decision(outcome="NEEDS_REVIEW"), _decision(outcome="maybe later")),
    ("cot_event", "cot_decision_reasons", "decision.reasons",
     _decision(reasons=["one"]), _decision(reasons=[])),
]  # fmt: skip


def _encode(codec: Codec, name: str, record: Any) -> bytes:
    encode = {"loan_application": codec.encode_application, "cot_event": codec.encode_cot}[name]
    return asyncio.run(encode(record))


@pytest.mark.parametrize("engine", ["fast", "celpy"])
@pytest.mark.parametrize(
    ("name", "rule", "field", "good", "bad"),
    CASES,
    ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)],
)
def test_rule_passes_and_fails(
    codecs: dict[str, Codec], engine: str, name: str, rule: str, field: str, good: Any, bad: Any
) -> None:
    codec = codecs[engine]
    assert _encode(codec, name, good)[0] == 0
    with pytest.raises(RuleViolationError) as info:
        _encode(codec, name, bad)
    assert info.value.context["rule"] == rule
    assert info.value.context["field"] == field
    assert rule in str(info.value) and field in str(info.value)


async def test_async_encode_raises_rule_violation(codecs: dict[str, Codec]) -> None:
    with pytest.raises(RuleViolationError) as info:
        await codecs["fast"].encode_application(sample_application(applicant_age=16))
    assert info.value.context["rule"] == "application_applicant_adult"


def test_every_rule_has_cases_and_compiles_on_both_engines() -> None:
    import celpy

    covered = {c[1] for c in CASES}
    for name in ("loan_application", "cot_event"):
        for spec in rule_specs(name):
            assert spec.name in covered
            # The Rust engine compiles each rule the first time a codec runs it,
            # as every case of test_rule_passes_and_fails does on both engines.
            for part in spec.expr.split(";"):
                celpy.Environment().compile(part)


def test_engines_agree_on_many_records(codecs: dict[str, Codec]) -> None:
    records: list[tuple[str, Any]] = [(c[0], c[3]) for c in CASES] + [(c[0], c[4]) for c in CASES]
    records += [("cot_event", e) for e in sample_cot_events()]
    records += [("loan_application", sample_application(currency=c)) for c in sorted(ISO_4217)[:20]]
    for name, record in records:
        outcomes: list[str | None] = []
        for engine in ("fast", "celpy"):
            try:
                _encode(codecs[engine], name, record)
                outcomes.append(None)
            except RuleViolationError as exc:
                outcomes.append(exc.context["rule"])
        assert outcomes[0] == outcomes[1], (name, record, outcomes)


def test_non_decision_kinds_skip_decision_rules(codecs: dict[str, Codec]) -> None:
    # The guard ("kind == DECISION;") makes the DECISION rules pass for other kinds.
    for event in sample_cot_events():
        assert _encode(codecs["fast"], "cot_event", event)[0] == 0


def test_auto_register_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"auto\.register"):
        Codec(
            SETTINGS,
            _client(),
            serializer_conf={"auto.register.schemas": True, "use.latest.version": False},
        )


def test_not_resolving_latest_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"use\.latest\.version"):
        Codec(SETTINGS, _client(), serializer_conf={"use.latest.version": False})


def test_rule_without_executor_fails_at_start() -> None:
    rule = rule_specs("cot_event")[0].to_rule(on_failure="ERROR")
    exotic = RuleSet(
        migration_rules=None, domain_rules=[rule.__class__(**{**_fields(rule), "type": "WASM"})]
    )
    codec = Codec(SETTINGS, _client({"cot_event": exotic}))
    with pytest.raises(ConfigError) as info:
        codec.start_sync()
    assert info.value.context["rule_type"] == "WASM"
    assert info.value.context["subject"] == subject_for(contract("cot_event"), SETTINGS)


def test_rule_with_unknown_action_fails_at_start() -> None:
    rule = rule_specs("cot_event")[0].to_rule(on_failure="PAGER")
    codec = Codec(
        SETTINGS, _client({"cot_event": RuleSet(migration_rules=None, domain_rules=[rule])})
    )
    with pytest.raises(ConfigError) as info:
        codec.start_sync()
    assert info.value.context["action"] == "PAGER"


def test_unregistered_subject_fails_at_start() -> None:
    codec = Codec(SETTINGS, SchemaRegistryClient.new_client({"url": "mock://empty"}))
    with pytest.raises(ConfigError, match="contracts apply"):
        codec.start_sync()


def _fields(rule: Any) -> dict[str, Any]:
    return {
        name: getattr(rule, name)
        for name in (
            "name",
            "doc",
            "kind",
            "mode",
            "type",
            "tags",
            "params",
            "expr",
            "on_success",
            "on_failure",
            "disabled",
        )
    }


def test_registered_application_rules_run_on_write_and_read() -> None:
    rules = rule_set_for("loan_application", SETTINGS)
    assert rules is not None and rules.domain_rules
    for rule in rules.domain_rules:
        assert rule.mode == RuleMode.WRITEREAD
        # DLQ when a producer breaks a rule; ERROR for a reader (the worker
        # dead-letters the record itself, once, with its source offset).
        assert rule.on_failure == "DLQ,ERROR"


@pytest.mark.parametrize("engine", ["fast", "celpy"])
def test_record_that_bypassed_the_rules_fails_on_read(engine: Any) -> None:
    read_rules = [
        r.to_rule(on_failure="ERROR,ERROR", mode=RuleMode.WRITEREAD)
        for r in rule_specs("loan_application")
    ]
    client = _client({"loan_application": RuleSet(migration_rules=None, domain_rules=read_rules)})
    codec = Codec(SETTINGS, client, cel_engine=engine)
    codec.start_sync()
    registered = codec.registered("loan_application")
    assert registered is not None
    # A producer without the rules: plain Avro in Confluent's wire format.
    schema = fastavro.parse_schema(json.loads(registered.schema.schema_str or ""))
    body = io.BytesIO()
    fastavro.schemaless_writer(
        body, schema, application_to_avro(sample_application(applicant_age=16))
    )
    raw = b"\x00" + struct.pack(">I", registered.schema_id) + body.getvalue()

    with pytest.raises(RuleViolationError) as info:
        codec.decode_sync("loan_application", raw)
    assert info.value.context["rule"] == "application_applicant_adult"
    assert info.value.context["field"] == "applicant_age"
    assert info.value.context.get("dlq_topic") is None

    good = io.BytesIO()
    fastavro.schemaless_writer(good, schema, application_to_avro(sample_application()))
    decoded = codec.decode_sync("loan_application", raw[:5] + good.getvalue())
    assert decoded == sample_application()


@pytest.mark.parametrize(
    ("expr", "fields"),
    [
        ("message.seq >= 0", {"seq"}),
        ("message.kind == 'DECISION'; size(message.decision.reasons) > 0", {"kind", "decision"}),
        ("message.currency in ['EUR', 'GBP']", {"currency"}),
        ("size(message) > 1", None),
        ("message['amount'] > 0.0", None),
        ("message.exists(k, k == 'amount')", None),
        # "message" inside a string literal: conservatively the whole record.
        ("has(message.notes) && message.notes != 'message'", None),
    ],
)
def test_fast_cel_converts_only_the_fields_a_rule_reads(expr: str, fields: set[str] | None) -> None:
    from flightrec.contracts.cel_fast import referenced_fields

    found = referenced_fields(expr)
    assert (None if found is None else set(found)) == fields


def _fast_cel(executor: Any, expr: str, message: dict[str, Any]) -> bool:
    """One CONDITION rule through ``executor`` as confluent's serializer calls it."""
    from confluent_kafka.schema_registry import Rule, RuleKind, RuleMode
    from confluent_kafka.schema_registry.serde import RuleContext
    from confluent_kafka.serialization import MessageField, SerializationContext

    rule = Rule(
        name="r", doc=None, kind=RuleKind.CONDITION, mode=RuleMode.WRITE, type="CEL",
        tags=None, params=None, expr=expr, on_success=None, on_failure=None, disabled=False,
    )  # fmt: skip
    ctx = RuleContext(
        None, SerializationContext("t", MessageField.VALUE), None, None, "t-value",
        RuleMode.WRITE, rule, 0, [rule], None, None,
    )  # fmt: skip
    return bool(executor.transform(ctx, message))


def test_fast_cel_projection_keeps_has_semantics() -> None:
    from flightrec.contracts.cel_fast import FastCelExecutor

    executor = FastCelExecutor()

    def run(expr: str, message: dict[str, Any]) -> bool:
        return _fast_cel(executor, expr, message)

    record = {"amount": 5.0, "notes": None, "other": "x"}
    assert run("message.amount > 1.0", record)
    assert run("has(message.notes)", record) is True
    assert run("has(message.missing)", record) is False
    assert run("size(message) == 3", record)  # a whole-record rule sees every field


def test_fast_cel_memoised_verdicts_follow_the_values_read() -> None:
    from flightrec.contracts.cel_fast import FastCelExecutor

    executor = FastCelExecutor()

    def run(expr: str, message: dict[str, Any]) -> bool:
        return _fast_cel(executor, expr, message)

    hex_rule = "message.trace_id.matches('^[0-9a-f]{32}$')"
    good, bad = "4bf92f3577b34da6a3ce929d0e0e4736", "4BF92F3577B34DA6A3CE929D0E0E4736"
    # Repeated values hit the memo; a new value is evaluated, never served a stale verdict.
    assert [run(hex_rule, {"trace_id": t, "seq": s}) for t, s in [(good, 1), (good, 2)]] == [
        True,
        True,
    ]
    assert run(hex_rule, {"trace_id": bad}) is False
    assert run(hex_rule, {"trace_id": good}) is True
    # CEL tells bool from int where Python's == does not: the memo keys on type too.
    assert run("message.flag == 1", {"flag": 1}) is True
    assert run("message.flag == 1", {"flag": True}) is False
    # Non-scalar values are never memoised: a changed list changes the verdict.
    reasons = "size(message.reasons) > 0"
    assert run(reasons, {"reasons": ["a"]}) is True
    assert run(reasons, {"reasons": []}) is False


@pytest.mark.parametrize("engine", ["fast", "celpy"])
def test_engines_agree_on_an_ordered_comparison_with_nan(engine: str) -> None:
    # The Rust engine cannot evaluate ``nan > 0.0`` (no overload); cel-python
    # answers false. The fast executor defers to cel-python there, so without
    # the finite-number rule in front both engines still name the same rule.
    positive = next(r for r in rule_specs("loan_application") if r.name.endswith("_positive"))
    only = RuleSet(migration_rules=None, domain_rules=[positive.to_rule(on_failure="ERROR")])
    codec = Codec(SETTINGS, _client({"loan_application": only}), cel_engine=engine)
    codec.start_sync()
    with pytest.raises(RuleViolationError) as info:
        _encode(codec, "loan_application", sample_application(amount=math.nan))
    assert info.value.context["rule"] == "application_amount_positive"
    assert _encode(codec, "loan_application", sample_application(amount=math.inf))[0] == 0
