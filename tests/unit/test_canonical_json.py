"""Canonical JSON holds only what a record can hold: finite numbers and text
UTF-8 can encode. NaN, infinity and lone surrogates are refused with an error
naming where they sit (``UnrecordableError``, also a ``ValueError`` as json's own)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from flightrec.contracts.errors import ContractError, UnrecordableError
from flightrec.contracts.events import canonical_json, recordable_text


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (math.nan, "$"),
        ({"confidence": math.nan}, "$.confidence"),
        ({"amount": math.inf}, "$.amount"),
        ({"a": {"b": [1.0, -math.inf]}}, "$.a.b[1]"),
        ({"reasons": ["fine", "bad \ud800 text"]}, "$.reasons[1]"),
        ({"reasoning": "\udfff"}, "$.reasoning"),
        ({"\ud800": 1}, "$.\\ud800"),
    ],
)
def test_canonical_json_refuses_what_no_record_holds(value: Any, path: str) -> None:
    with pytest.raises(UnrecordableError) as info:
        canonical_json(value)
    assert info.value.context["path"] == path
    assert isinstance(info.value, ContractError) and isinstance(info.value, ValueError)
    # The message itself is recordable: it can go into a RUN_FAILED reason or a DLQ header.
    str(info.value).encode("utf-8")


def test_canonical_json_names_the_number() -> None:
    with pytest.raises(UnrecordableError, match="nan is not a finite number"):
        canonical_json({"x": math.nan})
    with pytest.raises(UnrecordableError, match="-inf is not a finite number"):
        canonical_json([-math.inf])


def test_canonical_json_is_unchanged_for_what_a_record_holds() -> None:
    value = {"b": [1.5, 0.0, -2.0, 1e308], "a": "é ☃ 😀", "c": None, "d": True}
    assert canonical_json(value) == '{"a":"é ☃ 😀","b":[1.5,0.0,-2.0,1e+308],"c":null,"d":true}'


def test_other_encoding_errors_keep_their_own_class() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular") as info:
        canonical_json(loop)
    assert not isinstance(info.value, UnrecordableError)
    with pytest.raises(TypeError):
        canonical_json({"x": object()})


def test_recordable_text_escapes_only_what_utf8_cannot_encode() -> None:
    assert recordable_text("plain é ☃") == "plain é ☃"
    escaped = recordable_text("a\ud800b")
    assert escaped == "a\\ud800b"
    assert escaped.encode("utf-8") == b"a\\ud800b"
    assert recordable_text(escaped) == escaped  # idempotent
