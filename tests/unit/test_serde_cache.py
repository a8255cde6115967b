"""The inline-tag memo returns exactly what confluent-kafka computes, once per schema."""

from __future__ import annotations

from confluent_kafka.schema_registry._sync import avro as sync_avro
from confluent_kafka.schema_registry.common import avro as common_avro
from confluent_kafka.schema_registry.common.avro import parse_schema_with_repo

from flightrec.contracts import serde_cache
from flightrec.contracts.schema_files import load_schemas, schema_text


def test_memo_matches_the_library_and_is_per_schema_object() -> None:
    serde_cache.install()
    assert sync_avro.get_inline_tags is not common_avro.get_inline_tags
    for schema in load_schemas().values():
        parsed = parse_schema_with_repo(schema_text(schema), named_schemas={})
        expected = dict(common_avro.get_inline_tags(parsed))
        first = sync_avro.get_inline_tags(parsed)
        assert first == expected
        assert sync_avro.get_inline_tags(parsed) is first
        # An equal but distinct schema object gets its own entry.
        again = parse_schema_with_repo(schema_text(schema), named_schemas={})
        assert sync_avro.get_inline_tags(again) == expected


def test_pii_tags_are_found_through_the_memo() -> None:
    schema = load_schemas()["loan_application"]
    parsed = parse_schema_with_repo(schema_text(schema), named_schemas={})
    tags = sync_avro.get_inline_tags(parsed)
    tagged = {path.rsplit(".", 1)[-1] for path, names in tags.items() if "PII" in names}
    assert {"applicant_name", "national_id", "bank_account"} <= tagged


def test_expanded_schema_is_computed_once_and_equals_fastavro() -> None:
    from fastavro.schema import expand_schema

    serde_cache.install()
    schema = load_schemas()["cot_event"]
    parsed = parse_schema_with_repo(schema_text(schema), named_schemas={})
    first = sync_avro.expand_schema(parsed)  # type: ignore[attr-defined]
    assert first == expand_schema(parsed)
    assert sync_avro.expand_schema(parsed) is first  # type: ignore[attr-defined]
