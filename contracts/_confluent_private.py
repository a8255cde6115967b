"""The one place flightrec uses a private part of confluent-kafka.

Everything else talks to confluent-kafka through its public API. What is here
has no public equivalent; tests/unit/test_confluent_private.py asserts that each
private part still exists and behaves as used here, so an upgrade that changes
one fails that test rather than a plan or a recorder in production. Two touch
points, no more:

* :func:`verbose_compatibility`: the registry's explanation of an
  incompatible schema, through the client's REST layer.
* :func:`install_schema_memos`: per-schema memos for two functions that
  confluent-kafka's Avro serializer and deserializer call on every record.
  For every record they call ``get_inline_tags(parsed_schema)``, walking the
  whole schema to collect field tags (``PII`` ...) for the rule executors, and
  the serializer calls fastavro's ``expand_schema(parsed_schema)`` for field
  transforms. Both depend only on the schema, and the serializers keep one
  parsed schema object per registered schema, so computing them once per
  schema object is exact. No public hook exists: both are module-level calls
  inside name-mangled methods, so a subclass cannot skip them. Without the memo
  encoding a CoT event cost about 3.5 times as much (``flightrec bench codec``,
  best of three: 115 us -> 407 us an event to encode, 82 us -> 284 us to
  decode), which the recorder's per-event budget cannot absorb
  (docs/design.md, "Known traps").
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry._async import avro as _async_avro
from confluent_kafka.schema_registry._sync import avro as _sync_avro
from confluent_kafka.schema_registry.common import avro as _common_avro
from fastavro.schema import expand_schema as _fastavro_expand_schema

__all__ = [
    "SERIALIZER_MODULES",
    "SchemaMemo",
    "expand_schema_memo",
    "inline_tags_memo",
    "install_schema_memos",
    "verbose_compatibility",
]

SERIALIZER_MODULES = (_sync_avro, _async_avro)
"""confluent-kafka's modules whose per-record schema work the memos replace."""

_MAX_SCHEMAS = 256
_lock = threading.Lock()
_installed = False


class SchemaMemo:
    """``fn(schema)`` computed once per schema object (callers only read results).

    Keyed by the identity of the parsed schema and holding that object, so an
    id can never be reused by another schema while its entry lives. Bounded: a
    process sees a handful of schemas; past the bound the oldest go.
    """

    def __init__(self, fn: Callable[[Any], Any], post: Callable[[Any], Any] | None = None) -> None:
        self._fn = fn
        self._post = post
        self._memo: OrderedDict[int, tuple[Any, Any]] = OrderedDict()
        self.hits = 0

    def __call__(self, schema: Any) -> Any:
        key = id(schema)
        entry = self._memo.get(key)
        if entry is not None and entry[0] is schema:
            self.hits += 1
            return entry[1]
        result = self._fn(schema)
        if self._post is not None:
            result = self._post(result)
        with _lock:
            self._memo[key] = (schema, result)
            while len(self._memo) > _MAX_SCHEMAS:
                self._memo.popitem(last=False)
        return result


# A plain dict for the tags: a defaultdict shared between records would grow
# on every lookup of an untagged field.
inline_tags_memo = SchemaMemo(_common_avro.get_inline_tags, dict)
expand_schema_memo = SchemaMemo(_fastavro_expand_schema)


def install_schema_memos() -> None:
    """Route both serializer modules through the memos; idempotent."""
    global _installed
    if _installed:
        return
    for module in SERIALIZER_MODULES:
        module.get_inline_tags = inline_tags_memo  # type: ignore[attr-defined]
        module.expand_schema = expand_schema_memo  # type: ignore[attr-defined]
    _installed = True


def verbose_compatibility(
    client: SchemaRegistryClient, subject: str, schema: Schema, *, transitive: bool
) -> dict[str, Any]:
    """The registry's compatibility test of ``schema`` with its explanation.

    Returns the registry's response: ``is_compatible`` and, when incompatible,
    ``messages`` naming the offending fields. Transitive subjects are tested
    against every version, the others against the latest.

    Private: the public ``test_compatibility`` and
    ``test_compatibility_all_versions`` (confluent-kafka 2.16) return only
    ``is_compatible`` and drop ``messages``; no public method returns them.
    ``_rest_client`` is the REST layer those methods use (authentication, TLS,
    bounded retries), so this request is sent exactly as theirs are.
    """
    version_path = "versions" if transitive else "versions/latest"
    url = f"compatibility/subjects/{quote(subject, safe='')}/{version_path}?verbose=true"
    response: dict[str, Any] = client._rest_client.post(url, body=schema.to_dict())
    return response
