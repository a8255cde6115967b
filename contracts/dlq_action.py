"""The ``DLQ`` rule action: a record that breaks a data-contract rule goes to a
dead-letter topic, and the write still fails.

confluent-kafka ships a ``DlqAction``, but it does not fit our guarantees: it
writes the record as JSON in clear except for fields of ``ENCRYPT`` rules (our
PII is tagged ``PII``, not encrypted), its producer is not idempotent, and its
delivery is best-effort. This action, registered under the same name ``DLQ``
in the codec's own rule registry:

* writes the record as JSON with every field tagged PII in the schema replaced
  by a keyed HMAC (``hmac-sha256:<key id>:<hex>``), so PII never reaches the
  DLQ in clear, and NaN or infinity written as text (``"NaN"``), so the JSON
  stays JSON;
* writes through the :class:`~flightrec.contracts.writer.RecordWriter` the
  codec was given (``flightrec.kafka.ConfirmedProducer`` in a process: the
  data-keeping ``acks=all``, idempotent producer and its backpressure policy);
* sets confluent's ``__rule.*`` headers (rule name, mode, subject, topic,
  exception; a confluent deserializer skips the failed rule when re-reading the
  DLQ) plus ``error.class``, ``error.field`` and ``error.time``;
* lets the codec await broker confirmation (:meth:`DlqAction.confirm`) before it
  raises the :class:`~flightrec.contracts.errors.RuleViolationError` to the caller.

``run`` only queues the record (never blocks, never does I/O): the serializer
calls it synchronously, on the event loop or on whatever thread encodes.
:meth:`DlqAction.confirm`, awaited by the codec right after the violation,
writes what is queued and waits for the broker.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka.schema_registry.serde import RuleAction, RuleContext
from confluent_kafka.serialization import SerializationError

from flightrec.contracts.errors import ConfigError, FlightrecError, RecorderError
from flightrec.contracts.headers import (
    RULE_CONTENT_TYPE,
    RULE_ERROR_CLASS,
    RULE_ERROR_FIELD,
    RULE_ERROR_TIME,
    RULE_EXCEPTION,
    RULE_MODE,
    RULE_NAME,
    RULE_SUBJECT,
    RULE_TOPIC,
    Header,
)
from flightrec.contracts.pii_keys import PiiKeyring, load_pii_keyring
from flightrec.contracts.rules import DLQ_KEY_PARAM, DLQ_TOPIC_PARAM, FIELD_PARAM
from flightrec.contracts.schema_files import pii_fields
from flightrec.contracts.settings import Settings
from flightrec.contracts.writer import RecordWriter

__all__ = ["DlqAction", "pseudonymise"]

log = logging.getLogger(__name__)


def pseudonymise(value: Any, key: bytes, key_id: str) -> str:
    """Keyed HMAC-SHA256 of a PII value: joinable, not reversible without the key."""
    digest = hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()
    return f"hmac-sha256:{key_id}:{digest}"


@dataclass(frozen=True)
class _DlqRecord:
    """One record queued for the DLQ topic."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[Header]


class DlqAction(RuleAction):  # type: ignore[misc]
    """Rule action ``DLQ``: tee the failing record to a dead-letter topic, then fail.

    ``writer`` writes the DLQ records; without one, a ``DLQ`` rule that fails
    makes :meth:`confirm` raise :class:`ConfigError` (nothing was dead-lettered).
    """

    TYPE = "DLQ"

    def __init__(self, settings: Settings, writer: RecordWriter | None = None) -> None:
        self._settings = settings
        self._writer = writer
        # run() runs on the thread that encodes (the loop, or a worker thread).
        self._lock = threading.Lock()
        self._pii_cache: dict[str, frozenset[str]] = {}
        self._keyring: PiiKeyring | None = None
        self._queued: list[_DlqRecord] = []

    def type(self) -> str:
        """The action name rules refer to in ``onFailure``."""
        return self.TYPE

    def run(self, ctx: RuleContext, message: Any, ex: Exception | None) -> None:
        """Queue the record for the DLQ topic, then raise ``SerializationError``."""
        rule = ctx.rule
        params = rule.params.params if rule.params is not None else {}
        topic = params.get(DLQ_TOPIC_PARAM) or self._settings.topics.applications_dlq
        key_field = params.get(DLQ_KEY_PARAM)
        key = None
        if key_field and isinstance(message, dict) and message.get(key_field) is not None:
            key = str(message[key_field]).encode("utf-8")
        error_text = str(ex) if ex is not None else f"rule {rule.name} failed"
        headers: list[Header] = [
            (RULE_NAME, str(rule.name).encode()),
            (RULE_MODE, str(ctx.rule_mode.value if ctx.rule_mode else "").encode()),
            (RULE_SUBJECT, str(ctx.subject).encode()),
            (RULE_TOPIC, str(ctx.ser_ctx.topic if ctx.ser_ctx else "").encode()),
            (RULE_EXCEPTION, error_text.encode()),
            (RULE_ERROR_CLASS, b"RuleViolationError"),
            (RULE_ERROR_FIELD, str(params.get(FIELD_PARAM, "")).encode()),
            (RULE_ERROR_TIME, datetime.now(UTC).isoformat().encode()),
            (RULE_CONTENT_TYPE, b"application/json"),
        ]
        record = _DlqRecord(topic, key, self._redacted_json(ctx, message), headers)
        with self._lock:
            self._queued.append(record)
        msg = f"Rule failed: {rule.name}"
        if ex is not None:
            raise SerializationError(msg) from ex
        raise SerializationError(msg)

    def _redacted_json(self, ctx: RuleContext, message: Any) -> bytes:
        schema_str = ctx.target.schema_str if ctx.target is not None else None
        pii: frozenset[str] = frozenset()
        if schema_str:
            pii = self._pii_cache.get(schema_str) or pii_fields(schema_str)
            self._pii_cache[schema_str] = pii
        if self._keyring is None:
            # Read on first use: a codec that never dead-letters needs no key.
            self._keyring = load_pii_keyring(self._settings)
        key_id = self._keyring.active_id
        key = self._keyring.secret(key_id)
        data = dict(message) if isinstance(message, dict) else {"value": message}
        for path in pii:
            head = path.split(".", 1)[0]
            if head == path and data.get(path) is not None:
                data[path] = pseudonymise(data[path], key, key_id)
        return json.dumps(
            _finite_or_text(data), default=_json_default, sort_keys=True, allow_nan=False
        ).encode("utf-8")

    async def confirm(self, timeout_s: float = 30.0) -> None:
        """Write every DLQ record queued so far and wait until the broker confirms them.

        Raises :class:`RecorderError` when a DLQ write failed or is unconfirmed
        after ``timeout_s``, :class:`ConfigError` when there is no writer.
        """
        with self._lock:
            records, self._queued = self._queued, []
        if not records:
            return
        writer = self._writer
        if writer is None:
            raise ConfigError(
                "a DLQ rule failed but the codec has no DLQ writer: nothing was dead-lettered",
                topics=sorted({r.topic for r in records}),
            )
        try:
            async with asyncio.timeout(timeout_s):
                outcomes = await asyncio.gather(
                    *(
                        writer.send_and_wait(r.topic, r.value, key=r.key, headers=r.headers)
                        for r in records
                    ),
                    return_exceptions=True,
                )
        except TimeoutError:
            raise RecorderError(
                "DLQ records not confirmed in time", remaining=len(records)
            ) from None
        failures = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise RecorderError("DLQ write failed", errors=failures, retryable=True)

    @property
    def pending(self) -> int:
        """Records queued by :meth:`run` and not yet handed to :meth:`confirm`."""
        with self._lock:
            return len(self._queued)

    async def aclose(self) -> None:
        """Write what is still queued (a caller that stopped before confirming); failures are logged."""
        try:
            await self.confirm(timeout_s=10.0)
        except FlightrecError as exc:
            log.error("DLQ records not written at close: %s", exc)

    def close(self) -> None:
        """confluent-kafka's synchronous ``RuleBase.close`` (a rule registry
        closing its actions): it cannot write, so it only says what is left;
        the codec drains through :meth:`aclose` before that."""
        if self.pending:
            log.error("DLQ action closed with %d records not written", self.pending)


def _finite_or_text(value: Any) -> Any:
    """``value`` with every NaN and infinity written as text (``"NaN"``,
    ``"Infinity"``, ``"-Infinity"``): a record refused for one still reaches the
    DLQ as JSON every reader parses (the bare tokens are not JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return json.dumps(value)
    if isinstance(value, dict):
        return {key: _finite_or_text(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_text(item) for item in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    return str(value)
