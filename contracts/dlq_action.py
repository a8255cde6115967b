"""The ``DLQ`` rule action: a record that breaks a data-contract rule goes to a
dead-letter topic, and the write still fails.

confluent-kafka ships a ``DlqAction``, but it does not fit our guarantees: it
writes the record as JSON in clear except for fields of ``ENCRYPT`` rules (our
PII is tagged ``PII``, not encrypted), its producer is not idempotent, and its
delivery is best-effort. This action, registered under the same name ``DLQ``
in the codec's own rule registry:

* writes the record as JSON with every field tagged PII in the schema replaced
  by a keyed HMAC (``hmac-sha256:<key id>:<hex>``), so PII never reaches the
  DLQ in clear;
* uses the data-keeping producer settings (``acks=all``, idempotent);
* sets confluent's ``__rule.*`` headers (rule name, mode, subject, topic,
  exception; a confluent deserializer skips the failed rule when re-reading the
  DLQ) plus ``error.class``, ``error.field`` and ``error.time``;
* lets the codec await broker confirmation (:meth:`DlqAction.confirm`) before it
  raises the :class:`~flightrec.contracts.errors.RuleViolationError` to the caller.

``run`` only enqueues (never blocks): the serializer calls it on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.schema_registry.serde import RuleAction, RuleContext
from confluent_kafka.serialization import SerializationError

from flightrec.contracts.errors import RecorderError
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
)
from flightrec.contracts.rules import DLQ_KEY_PARAM, DLQ_TOPIC_PARAM, FIELD_PARAM
from flightrec.contracts.schema_files import pii_fields
from flightrec.contracts.settings import Settings

__all__ = ["DlqAction", "pseudonymise"]


def pseudonymise(value: Any, key: bytes, key_id: str) -> str:
    """Keyed HMAC-SHA256 of a PII value: joinable, not reversible without the key."""
    digest = hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()
    return f"hmac-sha256:{key_id}:{digest}"


class DlqAction(RuleAction):  # type: ignore[misc]
    """Rule action ``DLQ``: tee the failing record to a dead-letter topic, then fail."""

    TYPE = "DLQ"

    def __init__(self, settings: Settings, producer: Producer | None = None) -> None:
        self._settings = settings
        self._producer = producer
        self._lock = threading.Lock()
        self._pii_cache: dict[str, frozenset[str]] = {}
        self._failures: list[str] = []
        self._pending = 0

    def type(self) -> str:
        """The action name rules refer to in ``onFailure``."""
        return self.TYPE

    def _get_producer(self) -> Producer:
        with self._lock:
            if self._producer is None:
                self._producer = Producer(self._settings.producer_config())
            return self._producer

    def run(self, ctx: RuleContext, message: Any, ex: Exception | None) -> None:
        """Enqueue the record to the DLQ topic, then raise ``SerializationError``."""
        rule = ctx.rule
        params = rule.params.params if rule.params is not None else {}
        topic = params.get(DLQ_TOPIC_PARAM) or self._settings.topics.applications_dlq
        key_field = params.get(DLQ_KEY_PARAM)
        key = None
        if key_field and isinstance(message, dict) and message.get(key_field) is not None:
            key = str(message[key_field]).encode("utf-8")
        value = self._redacted_json(ctx, message)
        error_text = str(ex) if ex is not None else f"rule {rule.name} failed"
        headers: list[tuple[str, str | bytes | None]] = [
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
        producer = self._get_producer()
        with self._lock:
            self._pending += 1
        try:
            producer.produce(
                topic, value=value, key=key, headers=headers, on_delivery=self._delivered
            )
            producer.poll(0)
        except Exception as exc:  # BufferError, KafkaException: the DLQ write did not happen
            self._delivered(None, None, error=f"{type(exc).__name__}: {exc}")
        msg = f"Rule failed: {rule.name}"
        if ex is not None:
            raise SerializationError(msg) from ex
        raise SerializationError(msg)

    def _delivered(
        self, err: KafkaError | None, _msg: Message | None, *, error: str | None = None
    ) -> None:
        with self._lock:
            self._pending -= 1
            if err is not None:
                self._failures.append(err.str())
            elif error is not None:
                self._failures.append(error)

    def _redacted_json(self, ctx: RuleContext, message: Any) -> bytes:
        schema_str = ctx.target.schema_str if ctx.target is not None else None
        pii: frozenset[str] = frozenset()
        if schema_str:
            pii = self._pii_cache.get(schema_str) or pii_fields(schema_str)
            self._pii_cache[schema_str] = pii
        key = self._settings.pii_hmac_key.get_secret_value().encode("utf-8")
        data = dict(message) if isinstance(message, dict) else {"value": message}
        for path in pii:
            head = path.split(".", 1)[0]
            if head == path and data.get(path) is not None:
                data[path] = pseudonymise(data[path], key, self._settings.pii_key_id)
        return json.dumps(data, default=_json_default, sort_keys=True).encode("utf-8")

    async def confirm(self, timeout_s: float = 30.0) -> None:
        """Wait until every DLQ record enqueued so far is confirmed by the broker.

        Raises :class:`RecorderError` when a DLQ write failed or is unconfirmed.
        """
        producer = self._producer
        if producer is not None:
            remaining: int = await asyncio.to_thread(producer.flush, timeout_s)
            if remaining:
                raise RecorderError("DLQ records not confirmed in time", remaining=remaining)
        with self._lock:
            failures, self._failures = self._failures, []
        if failures:
            raise RecorderError("DLQ write failed", errors=failures, retryable=True)

    def close(self) -> None:
        """Flush what is queued (called by the serializer's close, off the loop)."""
        producer = self._producer
        if producer is not None:
            producer.flush(10.0)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    return str(value)
