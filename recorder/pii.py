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

Key rotation. The guard tokenises under the active key of a
:class:`~flightrec.contracts.pii_keys.PiiKeyring` (from settings: one key, or a
key-ring file); the key id is inside every token. To rotate, add a new key with
a new id and make it active: new records carry the new id, old records keep
theirs. To look a person up across a rotation, :func:`lookup_tokens` computes
their token under every key the ring still holds (keep retired keys, read-only,
for as long as records made with them are retained). Destroying a retired key
makes its tokens unlinkable for good (crypto-shredding).

Defence in depth. :meth:`PiiScrubber.scrub_event` replaces any real value of
the run's vault found in any string field of an event (free text, and JSON text
in raw or escaped form) by its token, so a value a model or a tool echoes back
is caught before the event is written. :meth:`PiiScrubber.scrub_text` does the
same for log lines and error messages; the guard remembers the values it
tokenised recently (bounded) so logs are scrubbed even without the run's vault.
This module is the scrub policy (which forms of which values); the replacing
itself is :class:`flightrec.contracts.substitution.Substitution`, which the
toolset uses too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel

from flightrec.contracts.dlq_action import pseudonymise
from flightrec.contracts.events import CotEventBase
from flightrec.contracts.pii_keys import PiiKeyring, load_pii_keyring
from flightrec.contracts.schema_files import DEFAULT_SCHEMA_DIR, load_schema_file, pii_fields
from flightrec.contracts.settings import Settings
from flightrec.contracts.substitution import Substitution

__all__ = [
    "MIN_SCRUB_LENGTH",
    "PiiGuard",
    "PiiScrubber",
    "application_pii_fields",
    "lookup_tokens",
    "pii_token",
]

E = TypeVar("E", bound=CotEventBase)

MIN_SCRUB_LENGTH = 3
"""Values shorter than this are tokenised but not searched for in free text:
scrubbing every ``"A"`` would destroy the text and protect nobody."""

_TOKEN_HEX = 32


def application_pii_fields() -> frozenset[str]:
    """PII fields of the ``LoanApplication`` contract shipped with the package."""
    return pii_fields(load_schema_file(DEFAULT_SCHEMA_DIR / "loan_application.avsc"))


def pii_token(secret: bytes, key_id: str, value: str) -> str:
    """The token of ``value`` under the key ``secret`` named ``key_id``."""
    digest = hmac.new(secret, value.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"pii:{key_id}:{digest[:_TOKEN_HEX]}"


def lookup_tokens(keyring: PiiKeyring, value: str) -> tuple[str, ...]:
    """Every token ``value`` may appear as, under every key of ``keyring``: the
    guard's token (CoT events, decisions) and the contract DLQ rule's
    pseudonym (``hmac-sha256:...``), key by key in the ring's order.

    What a compliance lookup searches the log for: one person's records across
    key rotations, as long as the retired keys are still in the ring."""
    tokens: list[str] = []
    for key_id in keyring.key_ids():
        secret = keyring.secret(key_id)
        tokens += [pii_token(secret, key_id, value), pseudonymise(value, secret, key_id)]
    return tuple(tokens)


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


def _scrub_substitution(vault: Mapping[str, str]) -> Substitution:
    """The scrub of ``vault``: every text form of each real value long enough to
    search for (:data:`MIN_SCRUB_LENGTH`) -> its token."""
    return Substitution(
        (form, token)
        for token, real in vault.items()
        if len(real) >= MIN_SCRUB_LENGTH
        for form in _forms(real)
    )


def _probes(substitution: Substitution) -> tuple[str, ...]:
    """How each form ``substitution`` replaces reads inside canonical JSON text.

    JSON escaping maps every character on its own (``"`` to ``\\"``, control
    characters to escapes, the rest unchanged), so a form found in a string
    field is found, escaped the same way, in the JSON text of the record that
    holds the field."""
    return tuple(
        dict.fromkeys(json.dumps(form, ensure_ascii=False)[1:-1] for form in substitution.olds)
    )


class _VaultScrub(NamedTuple):
    vault: Mapping[str, str]  # kept so its id is not reused while cached
    substitution: Substitution
    probes: tuple[str, ...]


class PiiScrubber:
    """Replaces real PII values by their tokens in events, text and log lines.

    This is the scrub policy (which text forms of which values; see the module
    docstring); every recorder scrubs through it, and :class:`PiiGuard`, which
    also makes the tokens, is one. ``remember`` bounds how many recently
    tokenised values are kept for scrubbing logs.
    """

    def __init__(self, *, remember: int = 4096) -> None:
        self._remember = remember
        # token -> real value, most recent last; read by logging from any thread.
        self._recent: OrderedDict[str, str] = OrderedDict()
        self._recent_scrub: Substitution | None = None
        self._lock = threading.Lock()
        # Scrubs of live vaults, by identity: events of one run reuse one scrub.
        self._scrubs: OrderedDict[int, _VaultScrub] = OrderedDict()

    def _register(self, vault: Mapping[str, str]) -> None:
        with self._lock:
            for token, real in vault.items():
                self._recent[token] = real
                self._recent.move_to_end(token)
            while len(self._recent) > self._remember:
                self._recent.popitem(last=False)
            self._recent_scrub = None

    def known(self) -> dict[str, str]:
        """A snapshot of the recently tokenised values (``token -> real``)."""
        with self._lock:
            return dict(self._recent)

    def _entry(self, vault: Mapping[str, str]) -> _VaultScrub:
        cached = self._scrubs.get(id(vault))
        if cached is not None and cached.vault is vault:
            self._scrubs.move_to_end(id(vault))
            return cached
        substitution = _scrub_substitution(vault)
        entry = _VaultScrub(vault, substitution, _probes(substitution))
        self._scrubs[id(vault)] = entry
        while len(self._scrubs) > 256:
            self._scrubs.popitem(last=False)
        return entry

    def may_hold(self, canonical: str, vault: Mapping[str, str] | None) -> bool:
        """Whether an event whose canonical JSON text is ``canonical`` may hold a
        real value of ``vault`` in a string field.

        ``False`` is certain, so the recorder skips :meth:`scrub_event` for
        most events at the cost of one substring search per form; ``True``
        (the value may also sit in a key or a number) means scrub.
        """
        if not vault:
            return False
        return any(probe in canonical for probe in self._entry(vault).probes)

    def scrub_event(self, event: E, vault: Mapping[str, str] | None) -> E:
        """``event`` with every real value of ``vault`` in its string fields
        replaced by its token; the same object when nothing was found."""
        if not vault:
            return event
        return self._entry(vault).substitution.model(event)

    def scrub_text(self, text: str, vault: Mapping[str, str] | None = None) -> str:
        """``text`` with the run's values and every recently tokenised value replaced."""
        if not text:
            return text
        if vault:
            text = self._entry(vault).substitution.text(text)
        return self.scrub_known(text)

    def scrub_known(self, text: str) -> str:
        """``text`` with every recently tokenised value replaced (for logs)."""
        with self._lock:
            scrub = self._recent_scrub
            if scrub is None:
                scrub = self._recent_scrub = _scrub_substitution(self._recent)
        return scrub.text(text)


class PiiGuard(PiiScrubber):
    """Tokenises the PII fields of applications; scrubs events, text and logs
    (as a :class:`PiiScrubber` that remembers the values it tokenised).

    ``fields`` are the dotted paths of the PII-tagged fields (from the contract:
    ``flightrec.contracts.schema_files.pii_fields(schema)``); by default those of the
    ``LoanApplication`` schema shipped with the package. ``remember`` bounds how
    many recently tokenised values are kept for scrubbing logs. Tokens are made
    under the active key of ``keyring``, by default the ring ``settings``
    configure (a worker passes the one ``pii_keyring_for`` vetted).
    """

    def __init__(
        self,
        settings: Settings,
        fields: Iterable[str] | None = None,
        *,
        remember: int = 4096,
        keyring: PiiKeyring | None = None,
    ) -> None:
        super().__init__(remember=remember)
        self.keyring = keyring if keyring is not None else load_pii_keyring(settings)
        self.key_id = self.keyring.active_id
        self._key = self.keyring.secret(self.key_id)
        self.fields: frozenset[str] = (
            frozenset(fields) if fields is not None else application_pii_fields()
        )

    def token(self, value: str) -> str:
        """The token of one value under the active key."""
        return pii_token(self._key, self.key_id, value)

    def tokenize(
        self, record: BaseModel | Mapping[str, Any], fields: Iterable[str] | None = None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """``(input view, vault)``: the input as JSON data with each PII value
        replaced by its token, and ``token -> real value`` for the tools.

        ``fields`` are the input's PII fields (dotted paths; an agent's
        ``AgentDefinition.pii_fields``); by default the guard's own."""
        application = record
        view: dict[str, Any] = (
            application.model_dump(mode="json")
            if isinstance(application, BaseModel)
            else json.loads(json.dumps(dict(application), default=str))
        )
        vault: dict[str, str] = {}
        for path in sorted(self.fields if fields is None else fields):
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
