"""Data-contract rules: CEL conditions registered with the schemas (``ruleSet.domainRules``).

The rules run inside confluent-kafka's serializer on every write (``mode:
WRITE``), through the executor registered for the rule type ``CEL`` (our
:mod:`flightrec.contracts.cel_fast` by default, cel-python's ``CelExecutor`` as the
reference). Each rule names the field it checks in its params
(``flightrec.field``) and carries a unique ``doc``: confluent's ERROR action
raises with the rule's doc only, so the codec finds the failed rule by its doc
and can raise a :class:`~flightrec.contracts.errors.RuleViolationError` naming rule and
field.

Every floating-point field of an input contract also gets a generated rule
(:func:`finite_number_rules`): NaN and infinity are refused, named as
``<field>_finite`` (``application_amount_finite`` for the loan application).

Expressions avoid mixing int and double literals (``amount > 0.0``): cel-python
rejects heterogeneous comparisons that the Rust engine accepts, and both engines
must agree on every rule. A ``guard; condition`` expression only checks the
condition when the guard holds (confluent's CEL executor semantics).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka.schema_registry import Rule, RuleKind, RuleMode, RuleParams, RuleSet

from flightrec.contracts.finite_numbers import finite_number_checks
from flightrec.contracts.schema_files import DEFAULT_SCHEMA_DIR, contract, load_schema_file
from flightrec.contracts.settings import Settings

__all__ = [
    "FIELD_PARAM",
    "ISO_4217",
    "OUTCOME_LABEL_PATTERN",
    "RuleSpec",
    "finite_number_rules",
    "input_rule_set",
    "rule_set_for",
    "rule_specs",
]

FIELD_PARAM = "flightrec.field"
"""Rule parameter naming the field a rule checks."""

DLQ_TOPIC_PARAM = "dlq.topic"
DLQ_KEY_PARAM = "dlq.key.field"

# Active ISO 4217 currency codes (funds and precious-metal codes left out:
# nobody borrows in XAU).
ISO_4217: frozenset[str] = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    ]
)

OUTCOME_LABEL_PATTERN = "^[A-Z][A-Z0-9_]{0,63}$"
"""What an outcome label looks like (``APPROVE``, ``PAY``, ``NEEDS_REVIEW``)."""

MIN_TERM_MONTHS = 6
MAX_TERM_MONTHS = 360
ADULT_AGE = 18


@dataclass(frozen=True)
class RuleSpec:
    """One CEL condition of a contract."""

    name: str
    field: str
    expr: str
    doc: str

    def to_rule(
        self,
        *,
        on_failure: str,
        params: dict[str, str] | None = None,
        mode: RuleMode = RuleMode.WRITE,
    ) -> Rule:
        """The confluent ``Rule`` registered with the schema."""
        all_params = {FIELD_PARAM: self.field, **(params or {})}
        return Rule(
            name=self.name,
            doc=self.doc,
            kind=RuleKind.CONDITION,
            mode=mode,
            type="CEL",
            tags=None,
            params=RuleParams(all_params),
            expr=self.expr,
            on_success=None,
            on_failure=on_failure,
            disabled=False,
        )


def _currency_list() -> str:
    return "[" + ", ".join(f"'{c}'" for c in sorted(ISO_4217)) + "]"


_APPLICATION_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "application_amount_positive",
        "amount",
        "message.amount > 0.0",
        "rule application_amount_positive: amount must be greater than 0",
    ),
    RuleSpec(
        "application_currency_iso4217",
        "currency",
        f"message.currency in {_currency_list()}",
        "rule application_currency_iso4217: currency must be an ISO 4217 code",
    ),
    RuleSpec(
        "application_term_bounds",
        "term_months",
        f"message.term_months >= {MIN_TERM_MONTHS} && message.term_months <= {MAX_TERM_MONTHS}",
        f"rule application_term_bounds: term_months must be within {MIN_TERM_MONTHS}..{MAX_TERM_MONTHS}",
    ),
    RuleSpec(
        "application_applicant_adult",
        "applicant_age",
        f"message.applicant_age >= {ADULT_AGE}",
        f"rule application_applicant_adult: applicant_age must be at least {ADULT_AGE}",
    ),
)

_COT_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "cot_seq_non_negative",
        "seq",
        "message.seq >= 0",
        "rule cot_seq_non_negative: seq must not be negative",
    ),
    RuleSpec(
        "cot_trace_id_format",
        "trace_id",
        "message.trace_id.matches('^[0-9a-f]{32}$')",
        "rule cot_trace_id_format: trace_id must be 32 lowercase hex digits",
    ),
    # Each agent declares its own labels (checked when the agent is loaded and
    # on every decision the runner builds); the shared CoT subject only fixes
    # their form, so loading another agent never changes agent.cot's rules.
    RuleSpec(
        "cot_decision_outcome",
        "decision.outcome_label",
        f"message.kind == 'DECISION'; message.decision.outcome_label.matches('{OUTCOME_LABEL_PATTERN}')",
        "rule cot_decision_outcome: a DECISION's outcome label must be an upper-case name "
        "(A-Z, 0-9, _)",
    ),
    RuleSpec(
        "cot_decision_reasons",
        "decision.reasons",
        "message.kind == 'DECISION'; size(message.decision.reasons) > 0",
        "rule cot_decision_reasons: a DECISION must give at least one reason",
    ),
)


def finite_number_rules(schema: Mapping[str, Any], *, prefix: str = "") -> tuple[RuleSpec, ...]:
    """One rule per floating-point field of ``schema``: NaN or infinity breaks it.

    Named ``<prefix><field>_finite`` (dots of a nested path become ``_``); see
    :mod:`flightrec.contracts.finite_numbers` for the condition and why it is
    written so. Every agent's input contract starts with these rules.
    """
    rules = []
    for check in finite_number_checks(schema):
        name = f"{prefix}{check.path.replace('.', '_')}_finite"
        doc = f"rule {name}: {check.path} must be a finite number, not NaN or infinity"
        rules.append(RuleSpec(name, check.path, check.expr, doc))
    return tuple(rules)


@functools.cache
def _application_rules() -> tuple[RuleSpec, ...]:
    # The generated rules first: a producer's NaN amount is named as such, not
    # as an amount that is not positive (confluent runs the rules in order on
    # write, and in reverse on read).
    spec = contract("loan_application")
    schema = load_schema_file(DEFAULT_SCHEMA_DIR / spec.file_name)
    return (*finite_number_rules(schema, prefix="application_"), *_APPLICATION_RULES)


def rule_specs(contract_name: str) -> tuple[RuleSpec, ...]:
    """The CEL conditions of a contract (empty when it has none)."""
    if contract_name == "loan_application":
        return _application_rules()
    if contract_name == "cot_event":
        return _COT_RULES
    return ()


def rule_set_for(contract_name: str, settings: Settings) -> RuleSet | None:
    """The ``ruleSet`` registered with a contract's schema, or ``None``.

    Application rules run on write and on read (``WRITEREAD``). A producer that
    breaks one sends the record to the applications DLQ (``DLQ``; the write
    still fails). A consumer reading a record that bypassed the rules gets the
    error (``ERROR``): the worker dead-letters it itself, with the source
    offset in the headers, so each poison record lands in the DLQ exactly once.
    A CoT event that breaks a rule is a bug in our runner: the recorder gets the
    error (``ERROR``, on write only, so recorded history always stays readable).
    """
    specs = rule_specs(contract_name)
    if not specs:
        return None
    if contract_name == "loan_application":
        return input_rule_set(specs, settings.topics.applications_dlq, "application_id")
    rules = [spec.to_rule(on_failure="ERROR") for spec in specs]
    return RuleSet(migration_rules=None, domain_rules=rules)


def input_rule_set(specs: tuple[RuleSpec, ...], dlq_topic: str, key_field: str) -> RuleSet | None:
    """The ``ruleSet`` of an agent's input topic: every condition on write and
    read; a write that breaks one also sends the record to ``dlq_topic``
    (keyed by ``key_field``), see :func:`rule_set_for`."""
    if not specs:
        return None
    params = {DLQ_TOPIC_PARAM: dlq_topic, DLQ_KEY_PARAM: key_field}
    rules = [
        spec.to_rule(on_failure="DLQ,ERROR", params=params, mode=RuleMode.WRITEREAD)
        for spec in specs
    ]
    return RuleSet(migration_rules=None, domain_rules=rules)
