"""The codec: pydantic events <-> Confluent-framed Avro bytes, through the registry.

Encoding goes through confluent-kafka's ``AvroSerializer`` with
``use.latest.version=True`` and ``auto.register.schemas=False``: the serializer
resolves the schema registered by ``flightrec contracts apply`` (with its
``ruleSet``), so the data-contract rules run on every write, and the bytes are
Confluent's wire format (magic byte, schema id, Avro body). Decoding goes
through ``AvroDeserializer`` with the latest version as reader schema, so events
written under an older version are resolved to the current one.

Why the sync serializers: after :meth:`Codec.start` has fetched every subject's
latest version (in a thread), the registry client answers from its cache
(no TTL is configured), so encoding is CPU work only and runs inline on the
loop; a thread hop per event would cost more than the encoding itself.
Decoding a schema id seen for the first time needs one registry call, so that
one decode runs in a thread.

Start-up refuses configurations under which rules would be skipped: a
serializer configured to auto-register (confluent-kafka then ignores the
registered rules), or a registered rule whose executor or action is missing.

Each codec has its own ``RuleRegistry`` (no process-wide registration): ``CEL``
runs on :class:`~flightrec.contracts.cel_fast.FastCelExecutor` by default (or cel-python's
``CelExecutor`` with ``cel_engine="celpy"``), ``CEL_FIELD`` on cel-python's
field executor, and ``DLQ`` is :class:`~flightrec.contracts.dlq_action.DlqAction`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx2
from confluent_kafka.schema_registry import (
    RegisteredSchema,
    SchemaRegistryClient,
    topic_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.rule_registry import RuleRegistry
from confluent_kafka.schema_registry.rules.cel.cel_executor import CelExecutor
from confluent_kafka.schema_registry.rules.cel.cel_field_executor import CelFieldExecutor
from confluent_kafka.schema_registry.serde import RuleConditionError, RuleError
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError
from pydantic import ValidationError

from flightrec.contracts import avro_mapping
from flightrec.contracts._confluent_private import install_schema_memos
from flightrec.contracts.cel_fast import FastCelExecutor
from flightrec.contracts.dlq_action import DlqAction
from flightrec.contracts.errors import (
    ConfigError,
    ContractError,
    DecodeError,
    RegistryError,
    RegistryUnavailableError,
    RuleViolationError,
)
from flightrec.contracts.events import (
    CotEvent,
    CotEventBase,
    LoanApplication,
    LoanDecision,
    ReplayResult,
)
from flightrec.contracts.rules import DLQ_TOPIC_PARAM, FIELD_PARAM
from flightrec.contracts.schema_files import CONTRACTS, ContractSpec, subject_for
from flightrec.contracts.settings import Settings, redact_url
from flightrec.contracts.writer import RecordWriter

__all__ = ["Codec", "registry_call", "registry_client"]

T = TypeVar("T")

_BUILTIN_ACTIONS = frozenset({"ERROR", "NONE"})


def registry_client(
    settings: Settings, *, timeout_s: float = 5.0, max_retries: int = 2
) -> SchemaRegistryClient:
    """A registry client with bounded retries: an unreachable registry fails in seconds."""
    config = settings.schema_registry_config()
    config.update(
        {
            "timeout": timeout_s,
            "max.retries": max_retries,
            "retries.wait.ms": 200,
            "retries.max.wait.ms": 1000,
        }
    )
    return SchemaRegistryClient(config)


def registry_call(fn: Callable[..., T], *args: Any, what: str, url: str = "", **kwargs: Any) -> T:
    """Call the registry client; transport failures become ``RegistryUnavailableError``.

    ``SchemaRegistryError`` is translated by the caller (it knows what a 404 or
    409 means); everything transport-level means the registry is unreachable
    after the client's bounded retries.
    """
    try:
        return fn(*args, **kwargs)
    # The registry client sends through httpx2 (confluent-kafka's declared HTTP
    # dependency) and lets its transport errors through unwrapped.
    except httpx2.TransportError as exc:
        # The error is printed and logged: a password in the URL's userinfo must not be.
        raise RegistryUnavailableError(
            f"schema registry unreachable: {what}",
            url=redact_url(url),
            error=redact_url(f"{type(exc).__name__}: {exc}"),
        ) from exc


@dataclass
class _Subject:
    """Everything the codec caches for one contract."""

    spec: ContractSpec
    topic: str
    subject: str
    ctx: SerializationContext
    serializer: Any
    deserializer: Any
    to_avro: Callable[[Any], dict[str, Any]]
    from_avro: Callable[[Mapping[str, Any]], Any]
    registered: RegisteredSchema | None = None
    rules_by_message: dict[str, Any] = field(default_factory=dict)
    known_ids: set[int] = field(default_factory=set)


_MAPPERS: Mapping[
    str, tuple[Callable[[Any], dict[str, Any]], Callable[[Mapping[str, Any]], Any]]
] = {
    "loan_application": (avro_mapping.application_to_avro, avro_mapping.application_from_avro),
    "loan_decision": (avro_mapping.decision_to_avro, avro_mapping.decision_from_avro),
    "cot_event": (avro_mapping.cot_to_avro, avro_mapping.cot_from_avro),
    "replay_result": (avro_mapping.replay_to_avro, avro_mapping.replay_from_avro),
}


def _mappers(
    spec: ContractSpec,
) -> tuple[Callable[[Any], dict[str, Any]], Callable[[Mapping[str, Any]], Any]]:
    if spec.model is None:
        return _MAPPERS[spec.name]
    model = spec.model

    # An agent's records: fastavro takes the model's fields as they are
    # (timestamps as aware datetimes) and gives them back the same way.
    def to_avro(value: Any) -> dict[str, Any]:
        return model.model_validate(value).model_dump()

    def from_avro(datum: Mapping[str, Any]) -> Any:
        return model.model_validate(dict(datum))

    return to_avro, from_avro


class Codec:
    """Encode and decode every governed topic value; build with Settings, then ``await start()``.

    ``client`` defaults to :func:`registry_client` (tests may pass confluent's
    ``MockSchemaRegistryClient``, e.g. ``SchemaRegistryClient.new_client`` on a
    ``mock://`` URL). ``serializer_conf`` overrides the serializer
    configuration; configurations that would skip the registered rules are
    refused at start-up with :class:`ConfigError`. ``dlq_producer`` writes the
    records of ``DLQ`` rules (``flightrec.kafka.ConfirmedProducer``); a codec
    that may encode such a record needs one.
    """

    def __init__(
        self,
        settings: Settings,
        client: SchemaRegistryClient | None = None,
        *,
        cel_engine: Literal["fast", "celpy"] = "fast",
        serializer_conf: Mapping[str, Any] | None = None,
        contracts: tuple[str, ...] | None = None,
        dlq_producer: RecordWriter | None = None,
        agent_contracts: Sequence[ContractSpec] = (),
    ) -> None:
        # confluent-kafka's per-record schema walks, memoised per schema
        # (contracts/_confluent_private.py says why and what it saves).
        install_schema_memos()
        self._settings = settings
        self._owns_client = client is None
        self._client = client if client is not None else registry_client(settings)
        self._rule_registry = RuleRegistry()  # type: ignore[no-untyped-call]
        if cel_engine == "fast":
            self._rule_registry.register_executor(FastCelExecutor())
        else:
            self._rule_registry.register_executor(CelExecutor())  # type: ignore[no-untyped-call]
        self._rule_registry.register_executor(CelFieldExecutor())  # type: ignore[no-untyped-call]
        self._dlq = DlqAction(settings, dlq_producer)
        self._rule_registry.register_action(self._dlq)
        self._serializer_conf: dict[str, Any] = {
            "auto.register.schemas": False,
            "use.latest.version": True,
            "subject.name.strategy": topic_subject_name_strategy,
        }
        self._serializer_conf.update(serializer_conf or {})
        wanted = contracts if contracts is not None else tuple(c.name for c in CONTRACTS)
        self._subjects: dict[str, _Subject] = {}
        for spec in CONTRACTS:
            if spec.name in wanted:
                self._subjects[spec.name] = self._build_subject(spec)
        for spec in agent_contracts:
            if spec.name not in self._subjects:
                self._subjects[spec.name] = self._build_subject(spec)
        self._start_lock = threading.Lock()
        self._started = False

    # ------------------------------------------------------------- lifecycle

    def _build_subject(self, spec: ContractSpec) -> _Subject:
        topic = spec.topic(self._settings)
        to_avro, from_avro = _mappers(spec)
        conf = dict(self._serializer_conf)
        if conf.get("auto.register.schemas"):
            raise ConfigError(
                "auto.register.schemas=True skips the registered data-contract rules; "
                "register with `flightrec contracts apply` and serialize with use.latest.version",
                subject=subject_for(spec, self._settings),
            )
        if not conf.get("use.latest.version") and conf.get("use.latest.with.metadata") is None:
            raise ConfigError(
                "the serializer must resolve the registered schema (use.latest.version) "
                "or the data-contract rules never run",
                subject=subject_for(spec, self._settings),
            )
        try:
            serializer = AvroSerializer(
                self._client, None, conf=conf, rule_registry=self._rule_registry
            )
            deserializer = AvroDeserializer(
                self._client,
                None,
                conf={
                    "use.latest.version": True,
                    "subject.name.strategy": topic_subject_name_strategy,
                },
                rule_registry=self._rule_registry,
            )
        except ValueError as exc:
            raise ConfigError(
                f"invalid serializer configuration: {exc}", contract=spec.name
            ) from exc
        return _Subject(
            spec=spec,
            topic=topic,
            subject=subject_for(spec, self._settings),
            ctx=SerializationContext(topic, MessageField.VALUE),
            serializer=serializer,
            deserializer=deserializer,
            to_avro=to_avro,
            from_avro=from_avro,
        )

    async def start(self) -> None:
        """Fetch every subject's latest schema (off the loop) and check its rules can run.

        Raises :class:`ConfigError` when a subject is not registered or a rule's
        executor or action is missing; :class:`RegistryUnavailableError` when
        the registry cannot be reached.
        """
        await asyncio.to_thread(self.start_sync)

    def start_sync(self) -> None:
        """Blocking variant of :meth:`start` (for threads and command-line code)."""
        with self._start_lock:
            if self._started:
                return
            for sub in self._subjects.values():
                self._warm(sub)
            self._started = True

    def _warm(self, sub: _Subject) -> None:
        try:
            latest = registry_call(
                self._client.get_latest_version,
                sub.subject,
                what=f"latest version of {sub.subject}",
                url=self._settings.schema_registry_url,
            )
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise ConfigError(
                    "subject not registered; run `flightrec contracts apply` first",
                    subject=sub.subject,
                ) from exc
            raise RegistryError(str(exc), subject=sub.subject, status=exc.http_status_code) from exc
        rule_set = latest.schema.rule_set
        rules = list(rule_set.domain_rules or []) if rule_set is not None else []
        for rule in rules:
            if rule.type is None or self._rule_registry.get_executor(rule.type.upper()) is None:
                raise ConfigError(
                    "a registered rule has no executor: it would not run",
                    subject=sub.subject,
                    rule=rule.name,
                    rule_type=rule.type,
                )
            for action in (rule.on_failure, rule.on_success):
                for name in (action or "").split(","):
                    name = name.strip()
                    if (
                        name
                        and name not in _BUILTIN_ACTIONS
                        and self._rule_registry.get_action(name) is None
                    ):
                        raise ConfigError(
                            "a registered rule names an action that is not registered",
                            subject=sub.subject,
                            rule=rule.name,
                            action=name,
                        )
            # A failed condition raises RuleConditionError(rule), which keeps only
            # its text; the library's own error_message(rule) gives that text.
            sub.rules_by_message[RuleConditionError.error_message(rule)] = rule
        sub.registered = latest
        if latest.schema_id is not None:
            sub.known_ids.add(latest.schema_id)

    async def close(self) -> None:
        """Write pending DLQ records and release the registry client (off the loop)."""
        await self._dlq.aclose()
        if self._owns_client:
            await asyncio.to_thread(self._client.close)

    @property
    def registry(self) -> SchemaRegistryClient:
        """The registry client this codec reads schemas from."""
        return self._client

    def registered(self, contract_name: str) -> RegisteredSchema | None:
        """The registered schema the codec writes with (after :meth:`start`)."""
        return self._subjects[contract_name].registered

    # ---------------------------------------------------------------- encode

    def _encode_sync(self, sub: _Subject, obj: Any) -> bytes:
        datum = sub.to_avro(obj)
        try:
            data: bytes | None = sub.serializer(datum, sub.ctx)
        except SerializationError as exc:
            raise self._rule_error(sub, exc) from exc
        except SchemaRegistryError as exc:
            raise RegistryError(str(exc), subject=sub.subject, status=exc.http_status_code) from exc
        except httpx2.TransportError as exc:
            raise RegistryUnavailableError(
                "schema registry unreachable", subject=sub.subject, error=str(exc)
            ) from exc
        except (ValueError, TypeError, KeyError) as exc:
            raise ContractError(
                f"record does not match the registered schema: {exc}", subject=sub.subject
            ) from exc
        if data is None:
            raise ContractError("serializer returned no bytes", subject=sub.subject)
        return data

    def _rule_error(
        self, sub: _Subject, exc: SerializationError, *, writing: bool = True
    ) -> ContractError:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, RuleError):
            cause = cause.__cause__
        if cause is None:
            return ContractError(f"serialization failed: {exc}", subject=sub.subject)
        rule = (
            sub.rules_by_message.get(str(cause)) if isinstance(cause, RuleConditionError) else None
        )
        if rule is None:
            return RuleViolationError(
                f"data-contract rule could not be evaluated: {cause}",
                subject=sub.subject,
                rule=None,
                field=None,
            )
        params = rule.params.params if rule.params is not None else {}
        # "WRITE_ACTION,READ_ACTION" for WRITEREAD rules; only writes use the DLQ action.
        actions = (rule.on_failure or "").split(",")
        dlq = writing and actions[0].strip() == "DLQ"
        return RuleViolationError(
            rule.doc or f"rule {rule.name} failed",
            subject=sub.subject,
            rule=rule.name,
            field=params.get(FIELD_PARAM),
            dlq_topic=params.get(DLQ_TOPIC_PARAM) if dlq else None,
        )

    async def _encode(self, name: str, obj: Any) -> bytes:
        sub = self._subjects[name]
        if sub.registered is None:
            await asyncio.to_thread(self._warm, sub)
        try:
            return self._encode_sync(sub, obj)
        except Exception:
            # A DLQ rule queued the record (its condition failed, or evaluating
            # it threw): confirm it before the caller hears of the failure.
            if self._dlq.pending:
                await self._dlq.confirm()
            raise

    async def encode(self, contract_name: str, value: Any) -> bytes:
        """Encode a value of any contract this codec holds (an agent's input or
        decision record included); rules run as for the named methods."""
        if contract_name not in self._subjects:
            raise ConfigError("the codec holds no such contract", contract=contract_name)
        return await self._encode(contract_name, value)

    async def decode(self, contract_name: str, data: bytes) -> Any:
        """Decode a value of any contract this codec holds into its model."""
        if contract_name not in self._subjects:
            raise ConfigError("the codec holds no such contract", contract=contract_name)
        return await self._decode(contract_name, data)

    async def encode_cot(self, event: CotEventBase) -> bytes:
        """Encode a CoT event (rules run; a violation raises :class:`RuleViolationError`)."""
        return await self._encode("cot_event", event)

    async def encode_application(self, application: LoanApplication) -> bytes:
        """Encode a loan application; a rule violation sends it to the DLQ and raises."""
        return await self._encode("loan_application", application)

    async def encode_decision(self, decision: LoanDecision) -> bytes:
        """Encode a loan decision."""
        return await self._encode("loan_decision", decision)

    async def encode_replay(self, result: ReplayResult) -> bytes:
        """Encode a replay result."""
        return await self._encode("replay_result", result)

    # ---------------------------------------------------------------- decode

    def _decode_sync(self, sub: _Subject, data: bytes) -> Any:
        try:
            datum = sub.deserializer(data, sub.ctx)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise DecodeError(
                    "unknown schema id in record", subject=sub.subject, error=str(exc)
                ) from exc
            raise RegistryError(str(exc), subject=sub.subject, status=exc.http_status_code) from exc
        except httpx2.TransportError as exc:
            raise RegistryUnavailableError(
                "schema registry unreachable", subject=sub.subject, error=str(exc)
            ) from exc
        except SerializationError as exc:
            # A READ rule failed (a record that bypassed the rules on write), or
            # the bytes are not this contract's wire format.
            error = self._rule_error(sub, exc, writing=False)
            if isinstance(error, RuleViolationError):
                raise error from exc
            raise DecodeError(f"not a {sub.spec.name} record: {exc}", subject=sub.subject) from exc
        except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError...
            raise DecodeError(
                f"not a {sub.spec.name} record: {type(exc).__name__}: {exc}", subject=sub.subject
            ) from exc
        if not isinstance(datum, dict):
            raise DecodeError(f"not a {sub.spec.name} record", subject=sub.subject)
        try:
            return sub.from_avro(datum)
        except (ValidationError, KeyError) as exc:
            raise DecodeError(
                f"record violates the {sub.spec.name} model: {exc}", subject=sub.subject
            ) from exc

    async def _decode(self, name: str, data: bytes) -> Any:
        sub = self._subjects[name]
        schema_id = _peek_schema_id(data)
        if sub.registered is None or schema_id is None or schema_id not in sub.known_ids:
            # First sight of this writer schema: one registry call, off the loop.
            result = await asyncio.to_thread(self._decode_first, sub, data, schema_id)
            return result
        return self._decode_sync(sub, data)

    def _decode_first(self, sub: _Subject, data: bytes, schema_id: int | None) -> Any:
        if sub.registered is None:
            self._warm(sub)
        result = self._decode_sync(sub, data)
        if schema_id is not None:
            sub.known_ids.add(schema_id)
        return result

    def decode_sync(self, contract_name: str, data: bytes) -> Any:
        """Decode on the calling thread (may call the registry for an unseen schema id)."""
        sub = self._subjects[contract_name]
        schema_id = _peek_schema_id(data)
        result = self._decode_first(sub, data, schema_id)
        return result

    async def decode_cot(self, data: bytes) -> CotEvent:
        """Decode a CoT event written under any registered version of the schema."""
        event: CotEvent = await self._decode("cot_event", data)
        return event

    async def decode_application(self, data: bytes) -> LoanApplication:
        """Decode a loan application."""
        application: LoanApplication = await self._decode("loan_application", data)
        return application

    async def decode_decision(self, data: bytes) -> LoanDecision:
        """Decode a loan decision."""
        decision: LoanDecision = await self._decode("loan_decision", data)
        return decision

    async def decode_replay(self, data: bytes) -> ReplayResult:
        """Decode a replay result."""
        result: ReplayResult = await self._decode("replay_result", data)
        return result


def _peek_schema_id(data: bytes) -> int | None:
    # Only to decide whether a registry call may happen (thread or inline); the
    # framing itself is parsed by confluent-kafka's deserializer.
    if len(data) > 5 and data[0] == 0:
        return int.from_bytes(data[1:5], "big")
    return None
