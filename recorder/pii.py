"""The PII guard: personal data never leaves the process in clear.

Which fields are personal data is declared in the contract (Confluent field
tags ``PII`` on the ``LoanApplication`` Avro schema), never hard-coded here.

Tokens. :meth:`PiiGuard.tokenize` replaces each PII value by
``pii:<key_id>:<first 32 hex of HMAC-SHA256(key, value)>``. The same value
always gives the same token under one key, so a compliance officer who holds a
person's details can compute their token and find every record about them,
while the log alone reveals nothing (a keyed HMAC, unlike a plain hash, cannot
be reversed by hashing candidate names or ids without the key). The agent
works on tokens; tools get the real values back through the run's vault
(``token -> real value``), which lives in memory for one run only.

Key rotation. ``settings.pii_hmac_key`` is the secret and
``settings.pii_key_id`` names it; the id is inside every token. To rotate,
deploy a new key with a new id: new records carry the new id, old records keep
theirs. To look a person up across a rotation, compute their token under each
key id still held (keep retired keys, read-only, for as long as records made
with them are retained). Destroying a retired key makes its tokens unlinkable
for good (crypto-shredding).

Defence in depth. :meth:`PiiGuard.scrub_event` replaces any real value of the
run's vault found in any string field of an event (free text, and JSON text in
raw or escaped form) by its token, so a value a model or a tool echoes back is
caught before the event is written. :meth:`PiiGuard.scrub_text` does the same
for log lines and error messages; the guard remembers the values it tokenised
recently (bounded) so logs are scrubbed even without the run's vault.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from flightrec.contracts.events import CotEventBase, LoanApplication
from flightrec.contracts.schema_files import DEFAULT_SCHEMA_DIR, load_schema_file, pii_fields
from flightrec.contracts.settings import Settings

__all__ = ["MIN_SCRUB_LENGTH", "PiiGuard", "application_pii_fields", "scrub_event", "scrub_text"]

E = TypeVar("E", bound=CotEventBase)

MIN_SCRUB_LENGTH = 3
"""Values shorter than this are tokenised but not searched for in free text:
scrubbing every ``"A"`` would destroy the text and protect nobody."""

_TOKEN_HEX = 32


def application_pii_fields() -> frozenset[str]:
    """PII fields of the ``LoanApplication`` contract shipped with the package."""
    return pii_fields(load_schema_file(DEFAULT_SCHEMA_DIR / "loan_application.avsc"))


def _forms(real: str) -> list[str]:
    """The ways a value can appear in text: as is, escaped inside JSON strings,
    and escaped twice (JSON text carried in a string of other JSON text, as a
    tool result or model output inside a recorded payload)."""
    forms = [real]
    for _depth in range(2):
        for form in list(forms):
            for ascii_only in (False, True):
                escaped = json.dumps(form, ensure_ascii=ascii_only)[1:-1]
                if escaped not in forms:
                    forms.append(escaped)
    return forms


def _table(vault: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(text form of a real value, token)``, longest first so overlaps resolve safely."""
    pairs = [
        (form, token)
        for token, real in vault.items()
        if len(real) >= MIN_SCRUB_LENGTH
        for form in _forms(real)
    ]
    pairs.sort(key=lambda p: len(p[0]), reverse=True)
    return pairs


def _probes(table: list[tuple[str, str]]) -> tuple[str, ...]:
    """How each form of ``table`` reads inside canonical JSON text.

    JSON escaping maps every character on its own (``"`` to ``\\"``, control
    characters to escapes, the rest unchanged), so a form found in a string
    field is found, escaped the same way, in the JSON text of the record that
    holds the field."""
    return tuple(dict.fromkeys(json.dumps(form, ensure_ascii=False)[1:-1] for form, _ in table))


def _swap(text: str, table: list[tuple[str, str]]) -> str:
    for old, new in table:
        if old in text:
            text = text.replace(old, new)
    return text


def scrub_text(text: str, vault: Mapping[str, str]) -> str:
    """``text`` with every real value of ``vault`` replaced by its token."""
    if not vault or not text:
        return text
    return _swap(text, _table(vault))


def _scrub_value(value: Any, table: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        return _swap(value, table)
    if isinstance(value, list):
        return [_scrub_value(v, table) for v in value]
    if isinstance(value, BaseModel):
        return _scrub_model(value, table)
    return value


def _scrub_model(model: Any, table: list[tuple[str, str]]) -> Any:
    changes: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, str | list | BaseModel):
            scrubbed = _scrub_value(value, table)
            if scrubbed != value:
                changes[name] = scrubbed
    # model_copy skips validation: replacing a JSON string inside JSON text keeps it valid JSON.
    return model.model_copy(update=changes) if changes else model


def scrub_event(event: E, vault: Mapping[str, str] | None) -> E:
    """``event`` with every real value of ``vault`` in its string fields replaced by
    its token; the same object when nothing was found."""
    if not vault:
        return event
    scrubbed: E = _scrub_model(event, _table(vault))
    return scrubbed


class PiiGuard:
    """Tokenises the PII fields of applications and scrubs events, text and logs.

    ``fields`` are the dotted paths of the PII-tagged fields (from the contract:
    ``flightrec.contracts.schema_files.pii_fields(schema)``); by default those of the
    ``LoanApplication`` schema shipped with the package. ``remember`` bounds how
    many recently tokenised values are kept for scrubbing logs.
    """

    def __init__(
        self, settings: Settings, fields: Iterable[str] | None = None, *, remember: int = 4096
    ) -> None:
        self._key = settings.pii_hmac_key.get_secret_value().encode("utf-8")
        self.key_id = settings.pii_key_id
        self.fields: frozenset[str] = (
            frozenset(fields) if fields is not None else application_pii_fields()
        )
        self._remember = remember
        # token -> real value, most recent last; read by logging from any thread.
        self._recent: OrderedDict[str, str] = OrderedDict()
        self._recent_table: list[tuple[str, str]] | None = None
        self._lock = threading.Lock()
        # Scrub tables of live vaults, by identity (the vault is kept so its id
        # cannot be reused while cached): events of one run reuse one table.
        self._tables: OrderedDict[
            int, tuple[Mapping[str, str], list[tuple[str, str]], tuple[str, ...]]
        ] = OrderedDict()

    def token(self, value: str) -> str:
        """The token of one value under the current key."""
        digest = hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"pii:{self.key_id}:{digest[:_TOKEN_HEX]}"

    def tokenize(
        self, application: LoanApplication | Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """``(input view, vault)``: the application as JSON data with each PII value
        replaced by its token, and ``token -> real value`` for the tools."""
        view: dict[str, Any] = (
            application.model_dump(mode="json")
            if isinstance(application, BaseModel)
            else json.loads(json.dumps(dict(application), default=str))
        )
        vault: dict[str, str] = {}
        for path in sorted(self.fields):
            *parents, leaf = path.split(".")
            node: Any = view
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict) or node.get(leaf) in (None, ""):
                continue
            real = str(node[leaf])
            token = self.token(real)
            node[leaf] = token
            vault[token] = real
        self._register(vault)
        return view, vault

    def _register(self, vault: Mapping[str, str]) -> None:
        with self._lock:
            for token, real in vault.items():
                self._recent[token] = real
                self._recent.move_to_end(token)
            while len(self._recent) > self._remember:
                self._recent.popitem(last=False)
            self._recent_table = None

    def known(self) -> dict[str, str]:
        """A snapshot of the recently tokenised values (``token -> real``)."""
        with self._lock:
            return dict(self._recent)

    def _entry(
        self, vault: Mapping[str, str]
    ) -> tuple[Mapping[str, str], list[tuple[str, str]], tuple[str, ...]]:
        cached = self._tables.get(id(vault))
        if cached is not None and cached[0] is vault:
            self._tables.move_to_end(id(vault))
            return cached
        table = _table(vault)
        entry = (vault, table, _probes(table))
        self._tables[id(vault)] = entry
        while len(self._tables) > 256:
            self._tables.popitem(last=False)
        return entry

    def _table_for(self, vault: Mapping[str, str]) -> list[tuple[str, str]]:
        return self._entry(vault)[1]

    def may_hold(self, canonical: str, vault: Mapping[str, str] | None) -> bool:
        """Whether an event whose canonical JSON text is ``canonical`` may hold a
        real value of ``vault`` in a string field.

        ``False`` is certain, so the recorder skips :meth:`scrub_event` for
        most events at the cost of one substring search per form; ``True``
        (the value may also sit in a key or a number) means scrub.
        """
        if not vault:
            return False
        return any(probe in canonical for probe in self._entry(vault)[2])

    def scrub_event(self, event: E, vault: Mapping[str, str] | None) -> E:
        """See :func:`scrub_event` (the scrub table of a vault is built once)."""
        if not vault:
            return event
        scrubbed: E = _scrub_model(event, self._table_for(vault))
        return scrubbed

    def scrub_text(self, text: str, vault: Mapping[str, str] | None = None) -> str:
        """``text`` with the run's values and every recently tokenised value replaced."""
        if not text:
            return text
        if vault:
            text = _swap(text, _table(vault))
        return self.scrub_known(text)

    def scrub_known(self, text: str) -> str:
        """``text`` with every recently tokenised value replaced (for logs)."""
        with self._lock:
            table = self._recent_table
            if table is None:
                table = self._recent_table = _table(self._recent)
        return _swap(text, table) if table else text
