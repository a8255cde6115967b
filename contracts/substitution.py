"""``Substitution``: the one primitive every PII scrub and reveal goes through.

Personal data is swapped between real values and their tokens in three places:
the recorder's PII guard (real value -> token in events, error text and logs;
:mod:`flightrec.recorder.pii` decides which text forms of which values), and
the toolset (token -> real value in a tool's arguments, real value -> token in
its result and error message). Each builds a :class:`Substitution` from its
``(old, new)`` pairs and applies it here.

It lives in ``contracts`` because the recorder and the tools need it and may
not import each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["Substitution"]

M = TypeVar("M", bound=BaseModel)


class Substitution:
    """Replaces each ``old`` string by its ``new`` one wherever it occurs.

    Replacement is by substring, longest ``old`` first, so a value embedded in
    a longer string (``"id pii:k1:ab"``) is replaced too and one that is a
    prefix of another cannot corrupt it. Empty ``old`` strings are ignored.
    """

    __slots__ = ("_pairs",)

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        kept = [(old, new) for old, new in pairs if old]
        kept.sort(key=lambda pair: len(pair[0]), reverse=True)
        self._pairs: tuple[tuple[str, str], ...] = tuple(kept)

    def __bool__(self) -> bool:
        return bool(self._pairs)

    @property
    def olds(self) -> tuple[str, ...]:
        """The strings replaced, longest first."""
        return tuple(old for old, _ in self._pairs)

    def text(self, text: str) -> str:
        """``text`` with every ``old`` replaced."""
        for old, new in self._pairs:
            if old in text:
                text = text.replace(old, new)
        return text

    def value(self, value: Any) -> Any:
        """``value`` with every string in it replaced: mapping keys and values,
        list and tuple items (as a list), the fields of pydantic models
        (:meth:`model`); anything else as it is."""
        if not self._pairs:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, BaseModel):
            return self.model(value)
        if isinstance(value, Mapping):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def model(self, model: M) -> M:
        """A copy of ``model`` with its string fields replaced (:meth:`value`);
        the same object when nothing was.

        The copy is not validated again: replacing a string inside JSON text by
        another JSON-escaped string keeps it valid JSON.
        """
        changes: dict[str, Any] = {}
        for name in type(model).model_fields:
            current = getattr(model, name)
            replaced = self.value(current)
            if replaced != current:
                changes[name] = replaced
        return model.model_copy(update=changes) if changes else model
