"""NaN and infinity in an agent's input never reach a decision.

Every float field of an input model gets a generated finite-number rule. A
record holding NaN, +inf or -inf in any of them is refused by the codec with
the rule and the field named, on both CEL engines: on write (the producer's
codec dead-letters it through the DLQ action, as JSON that stays JSON) and on
read (the worker's codec, for a record that bypassed the rules); the pipeline
dead-letters it with the rule and field headers, and the model is never asked.
The agents are the loan underwriter and the claims example; the registry is
the offline one, loaded with both agents' contracts.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest
from pydantic import BaseModel

from flightrec.agents.definition import AgentDefinition
from flightrec.agents.loan_agent import LOAN_AGENT
from flightrec.contracts.avro_mapping import application_to_avro
from flightrec.contracts.codec import Codec
from flightrec.contracts.errors import RuleViolationError
from flightrec.contracts.events import SourceRef
from flightrec.contracts.headers import DLQ_ERROR_FIELD, DLQ_ERROR_RULE, RULE_ERROR_FIELD, RULE_NAME
from flightrec.contracts.rules import FIELD_PARAM
from flightrec.contracts.schema_files import contract_rule_set
from flightrec.contracts.settings import Settings
from flightrec.testing import (
    MemoryProducer,
    MemoryRecorder,
    ScriptedModel,
    offline_registry,
)
from flightrec.testing.samples import sample_application
from flightrec_claims.agent import CLAIMS_AGENT
from flightrec_claims.samples import synthetic_claims

from run_support import decide, make_pipeline

SETTINGS = Settings()
NOW = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)
BAD_NUMBERS = {"nan": math.nan, "+inf": math.inf, "-inf": -math.inf}
AGENTS = {"loan": LOAN_AGENT, "claims": CLAIMS_AGENT}
SAMPLES: dict[str, Callable[[], BaseModel]] = {
    "loan": sample_application,
    "claims": lambda: synthetic_claims(1, seed=3, now=NOW)[0],
}


def float_fields(model: type[BaseModel]) -> list[str]:
    """The model's float fields, read from the model (not from the rules under test)."""
    return [name for name, info in model.model_fields.items() if info.annotation is float]


CASES = [
    (agent, field, bad)
    for agent, definition in AGENTS.items()
    for field in float_fields(definition.input_model)
    for bad in BAD_NUMBERS
]
IDS = [f"{agent}-{field}-{bad}" for agent, field, bad in CASES]


def input_name(definition: AgentDefinition) -> str:
    return definition.contracts[0].name


def finite_rule(definition: AgentDefinition, field: str) -> str:
    prefix = "application_" if definition is LOAN_AGENT else ""
    return f"{prefix}{field}_finite"


def registered_rules(definition: AgentDefinition) -> list[tuple[str, str]]:
    """(name, field) of every rule registered with the agent's input contract."""
    rule_set = contract_rule_set(definition.contracts[0], SETTINGS)
    assert rule_set is not None
    return [
        (rule.name, rule.params.params[FIELD_PARAM] if rule.params else "")
        for rule in rule_set.domain_rules or []
    ]


def rules_on(definition: AgentDefinition, field: str) -> set[str]:
    return {name for name, checked in registered_rules(definition) if checked == field}


def bad_record(agent: str, field: str, bad: str) -> BaseModel:
    # The models accept NaN and infinity (pydantic's default): the contract must refuse them.
    return SAMPLES[agent]().model_copy(update={field: BAD_NUMBERS[bad]})


class Codecs:
    """A codec per CEL engine on one offline registry, sharing a DLQ writer."""

    def __init__(self) -> None:
        client = offline_registry(SETTINGS, [*LOAN_AGENT.contracts, *CLAIMS_AGENT.contracts])
        self.producer = MemoryProducer()
        self.by_engine = {
            engine: Codec(
                SETTINGS,
                client,
                cel_engine=engine,
                contracts=(),
                agent_contracts=[*LOAN_AGENT.contracts, *CLAIMS_AGENT.contracts],
                dlq_producer=self.producer,
            )
            for engine in ("fast", "celpy")
        }
        for codec in self.by_engine.values():
            codec.start_sync()

    def bypassing_rules(self, agent: str, record: BaseModel) -> bytes:
        """The record in Confluent's wire format, written without the rules (a
        producer that does not use the registered contract)."""
        name = input_name(AGENTS[agent])
        registered = self.by_engine["fast"].registered(name)
        assert registered is not None and registered.schema_id is not None
        schema = fastavro.parse_schema(json.loads(registered.schema.schema_str or ""))
        datum = application_to_avro(record) if agent == "loan" else record.model_dump()
        body = io.BytesIO()
        fastavro.schemaless_writer(body, schema, datum)
        return b"\x00" + struct.pack(">I", registered.schema_id) + body.getvalue()


@pytest.fixture(scope="module")
def codecs() -> Iterator[Codecs]:
    yield Codecs()


@pytest.fixture(autouse=True)
def fresh_dlq(codecs: Codecs) -> None:
    codecs.producer.sent.clear()


def test_every_float_field_of_every_input_has_its_finite_rule() -> None:
    for definition in AGENTS.values():
        fields = float_fields(definition.input_model)
        assert fields, definition.name  # the cases below must cover something
        generated = [rule for rule in registered_rules(definition) if rule[0].endswith("_finite")]
        assert generated == [(finite_rule(definition, f), f) for f in fields]


@pytest.mark.parametrize("engine", ["fast", "celpy"])
@pytest.mark.parametrize(("agent", "field", "bad"), CASES, ids=IDS)
def test_a_producer_writing_a_bad_number_is_refused_and_dead_lettered(
    codecs: Codecs, engine: str, agent: str, field: str, bad: str
) -> None:
    definition = AGENTS[agent]
    codec = codecs.by_engine[engine]
    rule = finite_rule(definition, field)
    with pytest.raises(RuleViolationError) as info:
        asyncio.run(codec.encode(input_name(definition), bad_record(agent, field, bad)))
    assert (info.value.context["rule"], info.value.context["field"]) == (rule, field)
    assert rule in str(info.value) and field in str(info.value)

    (dead,) = codecs.producer.on(definition.topics.resolve(SETTINGS).dlq)
    assert dead.header(RULE_NAME) == rule.encode()
    assert dead.header(RULE_ERROR_FIELD) == field.encode()

    def no_bare_tokens(token: str) -> Any:
        raise AssertionError(f"the DLQ record holds the bare token {token}, which is not JSON")

    body = json.loads(dead.value or b"", parse_constant=no_bare_tokens)
    assert body[field] == json.dumps(BAD_NUMBERS[bad])  # "NaN", "Infinity", "-Infinity"


@pytest.mark.parametrize("engine", ["fast", "celpy"])
@pytest.mark.parametrize(("agent", "field", "bad"), CASES, ids=IDS)
def test_a_record_that_bypassed_the_rules_is_refused_on_read(
    codecs: Codecs, engine: str, agent: str, field: str, bad: str
) -> None:
    definition = AGENTS[agent]
    raw = codecs.bypassing_rules(agent, bad_record(agent, field, bad))
    with pytest.raises(RuleViolationError) as info:
        codecs.by_engine[engine].decode_sync(input_name(definition), raw)
    # Read rules run in reverse order: a declared rule on the same field
    # (amount > 0.0, false for NaN on both engines) may be the one that fails first.
    assert info.value.context["field"] == field
    assert info.value.context["rule"] in rules_on(definition, field)
    assert codecs.producer.sent == []  # a reader raises; the worker dead-letters it itself


@pytest.mark.parametrize("engine", ["fast", "celpy"])
def test_a_fields_only_rule_on_read_is_its_finite_rule(codecs: Codecs, engine: str) -> None:
    raw = codecs.bypassing_rules("loan", bad_record("loan", "annual_income", "nan"))
    with pytest.raises(RuleViolationError) as info:
        codecs.by_engine[engine].decode_sync("loan_application", raw)
    assert info.value.context["rule"] == "application_annual_income_finite"


@pytest.mark.parametrize(("agent", "field", "bad"), CASES, ids=IDS)
def test_the_pipeline_dead_letters_a_bad_number_and_never_decides(
    codecs: Codecs, agent: str, field: str, bad: str
) -> None:
    definition = AGENTS[agent]
    topics = definition.topics.resolve(SETTINGS)
    model = ScriptedModel([decide()])
    recorder = MemoryRecorder()
    producer = MemoryProducer()
    pipeline = make_pipeline(
        SETTINGS,
        codecs.by_engine["fast"],
        model=model,
        recorder=recorder,
        producer=producer,
        definition=definition,
        agent=None,
    )
    source = SourceRef(topic=topics.input, partition=0, offset=7, key="k-1")
    raw = codecs.bypassing_rules(agent, bad_record(agent, field, bad))

    result = asyncio.run(pipeline.process(raw, b"k-1", source))

    assert result.status == "dlq" and (result.error or "").startswith("RuleViolationError")
    assert producer.on(topics.decisions) == []
    (dead,) = producer.on(topics.dlq)
    assert dead.header(DLQ_ERROR_FIELD) == field.encode()
    assert (dead.header(DLQ_ERROR_RULE) or b"").decode() in rules_on(definition, field)
    assert model.requests == [] and recorder.events == []
