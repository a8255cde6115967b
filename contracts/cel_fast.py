"""A faster executor for the ``CEL`` rule type, on the Rust-backed CEL engine.

confluent-kafka's ``CelExecutor`` evaluates rules with cel-python (about 3,300
evaluations a second for a three-clause rule); at one evaluation per rule per
event that caps the recorder near 3,000 events a second. The Rust engine of the
``common-expression-language`` package (module ``cel``) evaluates the same
expressions about ten times faster. confluent's rule registry looks executors
up by type, so registering this one under ``CEL`` runs the *registered* rules
unchanged; only the engine differs.

Semantics follow ``CelExecutor``: the record is bound as ``message``; an
expression ``guard; condition`` evaluates ``condition`` only when ``guard`` is
true (otherwise the condition passes); a CONDITION returns a bool. TRANSFORM
rules (which rebuild the record) are delegated to cel-python, whose result
shaping the serializer expects. A test checks both engines agree on every rule.
"""

from __future__ import annotations

import threading
from typing import Any

import cel
from confluent_kafka.schema_registry import RuleKind
from confluent_kafka.schema_registry.rule_registry import RuleRegistry
from confluent_kafka.schema_registry.rules.cel.cel_executor import CelExecutor
from confluent_kafka.schema_registry.serde import RuleContext, RuleExecutor

__all__ = ["FastCelExecutor", "compile_rule"]


class _Compiled:
    """A rule expression split at its guard and compiled once."""

    __slots__ = ("condition", "guard")

    def __init__(self, expr: str) -> None:
        guard_text, sep, rest = expr.partition(";")
        if sep and guard_text.strip():
            self.guard: Any = cel.compile(guard_text)
            self.condition: Any = cel.compile(rest)
        else:
            self.guard = None
            self.condition = cel.compile(rest if sep else expr)


def compile_rule(expr: str) -> Any:
    """Compile an expression (guard included) the way the executor will; raises on bad CEL."""
    return _Compiled(expr)


class FastCelExecutor(RuleExecutor):  # type: ignore[misc]
    """Executor for rule type ``CEL`` running CONDITION rules on the Rust CEL engine.

    Programs are compiled on first use and cached per expression for the life
    of the executor (one executor per codec, never a process-wide cache).
    """

    def __init__(self) -> None:
        self._programs: dict[str, _Compiled] = {}
        self._lock = threading.Lock()
        self._fallback: CelExecutor | None = None
        # The serializer runs every rule of a subject on the same record object;
        # converting it to CEL values once per record (not once per rule) is
        # most of the saving. Per thread, so concurrent serializers never share.
        self._last = threading.local()

    def type(self) -> str:
        """The rule type this executor serves."""
        return "CEL"

    def transform(self, ctx: RuleContext, message: Any) -> Any:
        """Evaluate the rule of ``ctx`` on ``message`` (a CONDITION returns a bool)."""
        rule = ctx.rule
        if rule.kind != RuleKind.CONDITION:
            return self._cel_python().transform(ctx, message)
        expr = rule.expr
        if expr is None:
            return message
        program = self._programs.get(expr)
        if program is None:
            program = self._compile(expr)
        context = self._context(message)
        if program.guard is not None and not program.guard.execute(context):
            return True
        return bool(program.condition.execute(context))

    def _context(self, message: Any) -> Any:
        last = self._last
        # Identity, with the record itself held: an id() could be reused by a
        # new record once the old one is freed.
        if getattr(last, "message", None) is message:
            return last.context
        context = cel.Context({"message": message})
        last.message = message
        last.context = context
        return context

    def _compile(self, expr: str) -> _Compiled:
        with self._lock:
            program = self._programs.get(expr)
            if program is None:
                program = _Compiled(expr)
                self._programs[expr] = program
            return program

    def _cel_python(self) -> CelExecutor:
        if self._fallback is None:
            self._fallback = CelExecutor()  # type: ignore[no-untyped-call]
        return self._fallback

    def close(self) -> None:
        """Drop the compiled programs."""
        with self._lock:
            self._programs.clear()

    @classmethod
    def register(cls, registry: RuleRegistry) -> FastCelExecutor:
        """Create an executor and register it for type ``CEL`` in ``registry``."""
        executor = cls()
        registry.register_executor(executor)
        return executor
