"""The registry's rules over an in-memory log: ids, versions, inheritance, deletes, restart."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flightrec.testing.registry.errors import ApiError
from flightrec.testing.registry.service import RegistryService, parse_version
from flightrec.testing.registry.storage import MemoryLog


def body(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    schema = json.dumps({"type": "record", "name": "R", "fields": list(fields)})
    return {"schema": schema, **extra}


A = {"name": "a", "type": "int"}
B_DEFAULT = {"name": "b", "type": "int", "default": 0}
RULES = {"domainRules": [{"name": "r", "kind": "CONDITION", "type": "CEL", "expr": "true"}]}


async def service(log: MemoryLog | None = None) -> RegistryService:
    svc = RegistryService(log or MemoryLog())
    await svc.start()
    return svc


async def code_of(coro: Any) -> int:
    with pytest.raises(ApiError) as info:
        await coro
    return info.value.error_code


async def test_ids_versions_and_identity() -> None:
    svc = await service()
    one = await svc.register("s", body(A))
    assert (one["id"], one["version"]) == (1, 1)
    assert (await svc.register("s", body(A)))["version"] == 1
    assert (await svc.register("other", body(A)))["id"] == 1
    two = await svc.register("s", body(A, B_DEFAULT))
    assert (two["id"], two["version"]) == (2, 2)
    ruled = await svc.register("s", body(A, B_DEFAULT, ruleSet=RULES))
    assert (ruled["id"], ruled["version"]) == (3, 3)
    assert ruled["ruleSet"] == RULES


async def test_rules_are_inherited_by_a_plain_registration() -> None:
    svc = await service()
    first = await svc.register("s", body(A, ruleSet=RULES, metadata={"properties": {"o": "x"}}))
    again = await svc.register("s", body(A))
    assert again["version"] == first["version"]
    evolved = await svc.register("s", body(A, B_DEFAULT))
    assert evolved["ruleSet"] == RULES
    assert evolved["metadata"] == {"properties": {"o": "x"}}


async def test_a_failed_write_changes_nothing() -> None:
    log = MemoryLog()
    svc = await service(log)
    log.fail_next = True
    with pytest.raises(ApiError) as info:
        await svc.register("s", body(A))
    assert info.value.status == 500
    assert svc.state.subjects() == []
    assert (await svc.register("s", body(A)))["id"] == 1


async def test_restart_rebuilds_everything_from_the_log() -> None:
    log = MemoryLog()
    svc = await service(log)
    await svc.register("s", body(A))
    await svc.register("s", body(A, B_DEFAULT))
    await svc.register("gone", body({"name": "z", "type": "string"}))
    await svc.put_config("s", {"compatibility": "full"})
    await svc.delete_subject("gone", permanent=False)
    await svc.delete_subject("gone", permanent=True)
    again = await service(log)
    assert again.state.subject_versions("s")[-1].version == 2
    assert again.state.compatibility("s") == "FULL"
    assert again.state.subjects(deleted=True) == ["s"]
    # id 3 was given to the deleted subject's schema: never handed out again.
    assert (await again.register("n", body({"name": "y", "type": "long"})))["id"] == 4
    assert (await again.register("g2", body({"name": "z", "type": "string"})))["id"] == 3


async def test_delete_rules() -> None:
    svc = await service()
    await svc.register("s", body(A))
    assert await code_of(svc.delete_subject("s", permanent=True)) == 40405
    assert await svc.delete_subject("s", permanent=False) == [1]
    assert await code_of(svc.delete_subject("s", permanent=False)) == 40404
    with pytest.raises(ApiError) as info:
        svc.lookup("s", body(A), deleted=False)
    assert info.value.error_code == 40401
    assert svc.lookup("s", body(A), deleted=True)["version"] == 1
    assert await svc.delete_subject("s", permanent=True) == [1]
    assert await code_of(svc.delete_subject("s", permanent=False)) == 40401


async def test_incompatible_registration_is_409() -> None:
    svc = await service()
    await svc.register("s", body(A))
    with pytest.raises(ApiError) as info:
        await svc.register("s", body(A, {"name": "c", "type": "int"}))
    assert (info.value.status, info.value.error_code) == (409, 409)
    assert 'subject "s"' in info.value.message
    assert "field 'c'" in info.value.message


async def test_bad_bodies_are_422() -> None:
    svc = await service()
    bads: list[Any] = [
        {},
        {"schema": 5},
        {"schema": "{}"},
        {"schema": '"int"', "schemaType": "XML"},
        [],
    ]
    for bad in bads:
        assert await code_of(svc.register("s", bad)) == 42201
    assert await code_of(svc.put_config(None, {"compatibility": "SIDEWAYS"})) == 42203


def test_parse_version() -> None:
    assert parse_version("latest") is None
    assert parse_version("-1") is None
    assert parse_version("3") == 3
    for bad in ("0", "abc", str(2**31)):
        with pytest.raises(ApiError) as info:
            parse_version(bad)
        assert info.value.error_code == 42202


async def test_references_resolve_through_subjects() -> None:
    svc = await service()
    money = {"type": "record", "name": "Money", "fields": [{"name": "cents", "type": "long"}]}
    await svc.register("money", {"schema": json.dumps(money)})
    loan = {"type": "record", "name": "Loan", "fields": [{"name": "amount", "type": "Money"}]}
    ref = {"name": "Money", "subject": "money", "version": 1}
    assert await code_of(svc.register("loan", {"schema": json.dumps(loan)})) == 42201
    registered = await svc.register("loan", {"schema": json.dumps(loan), "references": [ref]})
    assert registered["references"] == [ref]
    assert svc.referenced_by("money", "1") == [registered["id"]]
    dangling = {"name": "Money", "subject": "money", "version": 9}
    bad = {"schema": json.dumps(loan), "references": [dangling]}
    assert await code_of(svc.register("loan2", bad)) == 42201
