"""Substitution, the primitive every PII scrub and reveal goes through: longest
first, in text, nested data and pydantic models."""

from __future__ import annotations

from flightrec.contracts.events import SourceRef
from flightrec.contracts.substitution import Substitution


def test_longest_first_and_empty_olds_ignored() -> None:
    swap = Substitution([("ab", "1"), ("abc", "2"), ("", "never")])
    assert swap.olds == ("abc", "ab")
    assert swap.text("abc ab xabcx") == "2 1 x2x"
    assert not Substitution([("", "x")])


def test_nested_data_and_models() -> None:
    swap = Substitution([("real", "tok")])
    assert swap.value({"real": ["a real", ("real",)], "n": 3}) == {
        "tok": ["a tok", ["tok"]],
        "n": 3,
    }
    source = SourceRef(topic="t-real", partition=0, offset=1)
    assert swap.model(source).topic == "t-tok"
    untouched = SourceRef(topic="t", partition=0, offset=1)
    assert swap.model(untouched) is untouched
