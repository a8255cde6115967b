"""The hash chain of a trace attempt: sealing (recorder) and verification (replay).

Every CoT event of one ``(trace_id, attempt)`` carries in ``prev_hash`` the
SHA-256 of the canonical bytes of the event before it (``GENESIS_HASH`` for the
first). Changing, removing or adding an event therefore breaks a link, and
:func:`verify_chain` names the first event concerned and what happened to it.

It lives in ``contracts`` because both sides need it and replay must not import
the recorder.

Canonical bytes: the canonical JSON (sorted keys, no whitespace, UTF-8) of
``model_dump(mode="json", exclude_defaults=True)`` with ``kind`` and
``prev_hash`` always present and ``signature`` left out (it signs the hash of
these bytes; see :mod:`flightrec.contracts.signing`). Leaving out fields at their default value keeps
old records verifiable after a backward-compatible schema evolution: a field
added later (with a default) decodes to its default on old events and so does
not change their bytes. Setting a field to its default is still a change the
hash sees, because the field then disappears from the canonical form.

What the chain cannot see on its own: the last event of an attempt has no
successor whose link would break, and a writer who recomputes every later hash
can rewrite a tail. Signatures close both gaps: the sealer, given a
:class:`~flightrec.contracts.signing.RecordSigner`, signs the hash of the
``DECISION`` and of the terminal event, and :func:`verify_signatures` checks
them against a :class:`~flightrec.contracts.signing.Keyring`.

Verdicts. :class:`ChainReport` is the one verdict on a chain, whoever checked it,
and :meth:`ChainReport.describe` the one way it is written; :class:`Integrity` is
the one way a whole record (chain and ``seq`` together) is called intact or not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, TypeVar

from flightrec.contracts.events import (
    GENESIS_HASH,
    TERMINAL_KINDS,
    CotEventBase,
    canonical_json,
)
from flightrec.contracts.signing import SIGNED_KINDS, Keyring, RecordSigner, SignedHead

__all__ = [
    "ChainProblem",
    "ChainReport",
    "ChainSealer",
    "Integrity",
    "canonical_bytes",
    "canonical_text",
    "event_hash",
    "verify_chain",
    "verify_signatures",
    "verify_signed_chain",
]

E = TypeVar("E", bound=CotEventBase)

ChainProblem = Literal[
    "modified", "deleted", "inserted", "appended after end", "unsigned", "forged attempt"
]


def canonical_text(event: CotEventBase) -> str:
    """Canonical JSON of the event, ``prev_hash`` included (:func:`canonical_bytes` as text)."""
    data = event.model_dump(mode="json", exclude_defaults=True)
    data.pop("signature", None)  # what the signature signs cannot include it
    data["kind"] = event.kind  # its default value, so exclude_defaults dropped it
    data["prev_hash"] = event.prev_hash
    return canonical_json(data)


def canonical_bytes(event: CotEventBase) -> bytes:
    """The bytes the chain hashes: canonical JSON of the event, ``prev_hash`` included."""
    return canonical_text(event).encode("utf-8")


def event_hash(event: CotEventBase) -> str:
    """SHA-256 (hex) of :func:`canonical_bytes`."""
    return _text_hash(canonical_text(event))


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ChainSealer:
    """Sets ``prev_hash`` on the events of each ``(trace_id, attempt)`` in emit order.

    One sealer serves many concurrent runs; events of one run must be sealed in
    their ``seq`` order (the runner yields them that way). State per run is one
    hash; call :meth:`forget` when a run is over (the recorder does so on the
    terminal event) to keep memory bounded.
    """

    def __init__(self, signer: RecordSigner | None = None) -> None:
        self._heads: dict[tuple[str, int], str] = {}
        self._signer = signer
        self._signed: dict[tuple[str, int], SignedHead] = {}

    @property
    def signer(self) -> RecordSigner | None:
        """The key that signs the signed kinds (None: nothing is signed)."""
        return self._signer

    def seal(self, event: E) -> E:
        """A copy of ``event`` linked to the previous sealed event of its run."""
        return self.seal_canonical(event)[0]

    def seal_canonical(self, event: E) -> tuple[E, str]:
        """:meth:`seal`, also giving the canonical text that was hashed, so a
        caller that must inspect the whole event (the PII guard) reads it
        without serialising the event a second time."""
        key = (event.trace_id, event.attempt)
        signer = self._signer if event.kind in SIGNED_KINDS else None
        update: dict[str, object] = {"prev_hash": self._heads.get(key, GENESIS_HASH)}
        if signer is not None:
            update["signing_key_id"] = signer.key_id
        sealed = event.model_copy(update=update)
        text = canonical_text(sealed)
        head = self._heads[key] = _text_hash(text)
        if signer is not None:
            signed = self._signed[key] = signer.sign_head(head)
            sealed = sealed.model_copy(update={"signature": signed.signature})
        return sealed, text

    def last_signed(self, trace_id: str, attempt: int) -> SignedHead | None:
        """The last signed head of the run (its ``DECISION``, until the terminal event)."""
        return self._signed.get((trace_id, attempt))

    def head(self, trace_id: str, attempt: int) -> str | None:
        """Hash of the last sealed event of the run (None before the first)."""
        return self._heads.get((trace_id, attempt))

    def restore(self, trace_id: str, attempt: int, head: str | None) -> None:
        """Put back a head saved with :meth:`head` (an event sealed but never written)."""
        key = (trace_id, attempt)
        if head is None:
            self._heads.pop(key, None)
        else:
            self._heads[key] = head
        signed = self._signed.get(key)
        if signed is not None and signed.head != head:
            # The unwritten event was the signed one: its signature is no head.
            del self._signed[key]

    def forget(self, trace_id: str, attempt: int) -> None:
        """Drop the state of a finished run."""
        self._heads.pop((trace_id, attempt), None)
        self._signed.pop((trace_id, attempt), None)

    def __len__(self) -> int:
        return len(self._heads)


class Integrity(StrEnum):
    """Whether a record is intact, as every report and message spells it."""

    INTACT = "INTACT"
    NOT_INTACT = "NOT INTACT"

    @classmethod
    def of(cls, intact: bool) -> Integrity:
        """The verdict for ``intact``."""
        return cls.INTACT if intact else cls.NOT_INTACT


@dataclass(frozen=True)
class ChainReport:
    """Verdict on the hash chain of events: of :func:`verify_chain`, or of any
    other chain check replay is given.

    When broken, ``problem`` says what happened to the first event concerned:
    ``modified`` (its content changed: the link to its successor breaks),
    ``deleted`` (``seq`` names the first missing event; ``event_id`` the event
    after the hole) or ``inserted`` (an event that is not part of the chain).
    ``index`` is the position in the sequence given, ``events`` how many were checked.
    """

    ok: bool
    events: int = 0
    head: str | None = None
    problem: ChainProblem | None = None
    seq: int | None = None
    event_id: str | None = None
    index: int | None = None
    trace_id: str | None = None
    attempt: int | None = None
    detail: str = ""

    def describe(self) -> str:
        """One readable line: ``"intact"``, or what broke where
        (``"BROKEN - modified at seq 4 (event e4): ..."``)."""
        if self.ok:
            return "intact"
        where = f" at seq {self.seq}" if self.seq is not None else ""
        event = f" (event {self.event_id})" if self.event_id else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"BROKEN - {self.problem or 'chain mismatch'}{where}{event}{detail}"


def verify_chain(events: Sequence[CotEventBase]) -> ChainReport:
    """Check the hash chain of events in log order.

    Events of several ``(trace_id, attempt)`` are checked per attempt (in order
    of first appearance); the first problem found is reported.
    """
    groups: dict[tuple[str, int], list[CotEventBase]] = {}
    for event in events:
        groups.setdefault((event.trace_id, event.attempt), []).append(event)
    if not groups:
        return ChainReport(ok=True, events=0)
    report = ChainReport(ok=True, events=0)
    for group in groups.values():
        report = _verify_attempt(group)
        if not report.ok:
            return report
    return report if len(groups) == 1 else ChainReport(ok=True, events=len(events))


def _verify_attempt(events: list[CotEventBase]) -> ChainReport:
    hashes = [event_hash(e) for e in events]
    n = len(events)

    def prev_of(i: int) -> str:
        return GENESIS_HASH if i == 0 else hashes[i - 1]

    def linked(i: int) -> bool:
        return events[i].prev_hash == prev_of(i)

    def removable(i: int) -> bool:
        # True when the chain holds without events[i]: the event was slipped in.
        if i + 1 >= n:
            return False
        return events[i + 1].prev_hash == prev_of(i)

    def broken(problem: ChainProblem, i: int, detail: str, seq: int | None = None) -> ChainReport:
        return _problem_at(problem, events[i], i, n, detail, seq)

    for j in range(n):
        expected_seq = 0 if j == 0 else events[j - 1].seq + 1
        seq = events[j].seq
        if linked(j):
            continue
        if seq > expected_seq:
            return broken(
                "deleted",
                j,
                f"seq {expected_seq}..{seq - 1} missing before event {events[j].event_id}",
                seq=expected_seq,
            )
        if seq < expected_seq:
            # A repeated or backwards seq: one of the two neighbours was slipped in.
            if removable(j) or j == n - 1:
                return broken("inserted", j, f"seq {seq} repeated; the chain holds without it")
            if j > 0 and events[j].prev_hash == prev_of(j - 1):
                return broken("inserted", j - 1, f"seq {seq} repeated; the chain holds without it")
            return broken("inserted", j, f"seq {seq} out of order")
        if removable(j):
            return broken("inserted", j, "the chain holds without this event")
        if j > 0 and events[j].prev_hash == prev_of(j - 1):
            return broken("inserted", j - 1, "the chain holds without this event")
        if j == 0:
            return broken("modified", 0, "first event does not start from the genesis hash")
        if j + 1 < n and not linked(j + 1):
            # Both links around events[j] break: its own prev_hash was changed.
            return broken("modified", j, "prev_hash does not match the event before")
        if events[j - 1].kind in TERMINAL_KINDS:
            return broken("inserted", j, "event after the end of the run")
        return broken("modified", j - 1, "content no longer matches the hash its successor holds")

    # Links intact; an event after the end was chained on by someone who
    # could write the log: the run had ended.
    for j, event in enumerate(events[:-1]):
        if event.kind in TERMINAL_KINDS:
            after = events[j + 1]
            return broken(
                "appended after end",
                j + 1,
                f"{after.kind} written after the run ended with {event.kind} at seq {event.seq}",
            )
    # A seq irregularity then means the chain was rebuilt around it.
    for j, event in enumerate(events):
        if event.seq != j:
            problem: ChainProblem = "deleted" if event.seq > j else "inserted"
            return broken(problem, j, f"links intact but seq {event.seq} at position {j}", seq=j)
    return ChainReport(
        ok=True,
        events=n,
        head=hashes[-1],
        trace_id=events[0].trace_id,
        attempt=events[0].attempt,
    )


def verify_signatures(events: Sequence[CotEventBase], keyring: Keyring) -> ChainReport:
    """Check the signatures of events in log order, per attempt.

    Every event of a signed kind (``DECISION``, ``RUN_COMPLETED``,
    ``RUN_FAILED``) must carry a signature of its chain hash by a key of
    ``keyring``: one without is ``unsigned``; one whose signature does not
    verify, or whose key is not trusted, is a ``forged attempt``. An event of
    another kind carrying a signature is checked the same way. The first
    problem found is reported (the chain itself is :func:`verify_chain`'s job).
    """
    checked = 0
    for index, event in enumerate(events):
        must = event.kind in SIGNED_KINDS
        if event.signature is None:
            if must:
                return _problem_at(
                    "unsigned", event, index, len(events), f"{event.kind} carries no signature"
                )
            continue
        checked += 1
        key_id = event.signing_key_id or ""
        if key_id not in keyring:
            detail = f"signed with key {key_id or '(none)'}, which is not trusted"
            return _problem_at("forged attempt", event, index, len(events), detail)
        if not keyring.verify_head(event_hash(event), event.signature, key_id):
            detail = f"the signature of {event.kind} does not match its content (key {key_id})"
            return _problem_at("forged attempt", event, index, len(events), detail)
    return ChainReport(ok=True, events=len(events), detail=f"{checked} signature(s) verified")


def _problem_at(
    problem: ChainProblem,
    event: CotEventBase,
    index: int,
    n: int,
    detail: str,
    seq: int | None = None,
) -> ChainReport:
    """The verdict naming ``problem`` at ``event`` (position ``index`` of ``n``);
    ``seq`` when the problem is at another seq than the event's (a hole)."""
    return ChainReport(
        ok=False,
        events=n,
        problem=problem,
        seq=event.seq if seq is None else seq,
        event_id=event.event_id,
        index=index,
        trace_id=event.trace_id,
        attempt=event.attempt,
        detail=detail,
    )


def verify_signed_chain(keyring: Keyring) -> Callable[[Sequence[CotEventBase]], ChainReport]:
    """A chain check that also demands the signatures: :func:`verify_chain`,
    then :func:`verify_signatures` with ``keyring`` (what verifiers of records
    written since signing use; the first problem found is the verdict)."""

    def verify(events: Sequence[CotEventBase]) -> ChainReport:
        chain = verify_chain(events)
        if not chain.ok:
            return chain
        signatures = verify_signatures(events, keyring)
        return chain if signatures.ok else signatures

    return verify
