"""Toolset: allow-list, validation, timeout, errors as outcomes, PII swap, describe."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import BaseModel, ConfigDict, Field

from flightrec.contracts.errors import ConfigError, ToolHTTPError
from flightrec.contracts.failures import FailureKind
from flightrec.tools.base import ToolExecutor
from flightrec.tools.spec import ToolSpec, tool
from flightrec.tools.toolset import PiiSwap, Toolset

TOKEN = "pii:k1:3f2a9c0d11aa"
REAL = "123-45-6789"


class EchoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=20)
    times: int = Field(default=1, ge=1, le=3)


class EchoResult(BaseModel):
    text: str


class Seen:
    """What the tools received, so tests can check the real values arrived."""

    def __init__(self) -> None:
        self.texts: list[str] = []


@tool
async def echo(args: EchoArgs, seen: Seen) -> EchoResult:
    """Repeat the text."""
    seen.texts.append(args.text)
    return EchoResult(text=args.text * args.times)


@tool(timeout_s=0.05)
async def sleepy(args: EchoArgs) -> EchoResult:
    """Sleeps far beyond its timeout."""
    await asyncio.sleep(10)
    return EchoResult(text=args.text)


@tool(retryable=True)
async def broken(args: EchoArgs) -> EchoResult:
    """Fails with a plain exception that mentions its (real) input."""
    raise RuntimeError(f"backend rejected {args.text}")


@tool
async def http_terminal(args: EchoArgs) -> EchoResult:
    """Fails with a typed, terminal error."""
    raise ToolHTTPError("request refused", status=404)


@tool
async def bad_result(args: EchoArgs) -> EchoResult:
    """Returns something that is not an EchoResult."""
    return {"wrong": 1}  # type: ignore[return-value]


@tool
async def inner_timeout(args: EchoArgs) -> EchoResult:
    """Raises TimeoutError itself, well within the toolset's deadline."""
    raise TimeoutError("upstream said timeout")


ALL = [echo, sleepy, broken, http_terminal, bad_result, inner_timeout]


def make(allowed: list[str] | None = None) -> tuple[Toolset, Seen]:
    seen = Seen()
    return Toolset(ALL, allowed=allowed, context=seen, default_timeout_s=2.0), seen


def test_decorator_builds_spec() -> None:
    assert isinstance(echo, ToolSpec)
    assert echo.name == "echo"
    assert echo.description == "Repeat the text."
    assert echo.args_model is EchoArgs and echo.result_model is EchoResult
    assert sleepy.timeout_s == 0.05 and broken.retryable and not echo.retryable


def test_decorator_rejects_non_model_and_sync_functions() -> None:
    async def untyped(args: dict[str, str]) -> EchoResult:
        return EchoResult(text="")

    def sync(args: EchoArgs) -> EchoResult:
        return EchoResult(text="")

    with pytest.raises(ConfigError):
        tool(untyped)
    with pytest.raises(ConfigError):
        tool(sync)  # type: ignore[arg-type]


def test_toolset_satisfies_protocol_and_rejects_unknown_allow_list() -> None:
    tools, _ = make(["echo"])
    assert isinstance(tools, ToolExecutor)
    assert tools.allowed == frozenset({"echo"})
    with pytest.raises(ConfigError):
        Toolset(ALL, allowed=["echo", "transfer_funds"])


def test_describe_lists_only_allowed_tools_with_schema() -> None:
    tools, _ = make(["sleepy", "echo"])
    described = tools.describe()
    assert [d["name"] for d in described] == ["echo", "sleepy"]
    assert described[0]["description"] == "Repeat the text."
    assert described[0]["parameters"]["properties"]["text"]["type"] == "string"
    assert described[0]["parameters"]["additionalProperties"] is False


async def test_ok_outcome_with_result_and_latency() -> None:
    tools, seen = make()
    outcome = await tools.call("echo", {"text": "ab", "times": 2}, call_id="c1")
    assert outcome.status == "ok"
    assert outcome.result == {"text": "abab"}
    assert outcome.error_type is None
    assert outcome.latency_ms >= 0
    assert seen.texts == ["ab"]


async def test_tool_outside_allow_list_never_runs() -> None:
    tools, seen = make(["sleepy"])
    outcome = await tools.call("echo", {"text": "x"}, call_id="c1")
    assert outcome.status == "error"
    assert outcome.error_type == "ToolNotAllowedError"
    assert outcome.retryable is False
    assert seen.texts == []
    unknown = await tools.call("transfer_funds", {"amount": 50000}, call_id="c2")
    assert unknown.error_type == "ToolNotAllowedError"


async def test_invalid_arguments_are_a_terminal_outcome_with_the_reason() -> None:
    tools, seen = make()
    outcome = await tools.call("echo", {"text": "x", "times": 9}, call_id="c1")
    assert outcome.status == "error"
    assert outcome.error_type == "ToolArgumentsError"
    assert outcome.retryable is False
    assert outcome.error_message is not None and "times" in outcome.error_message
    extra = await tools.call("echo", {"text": "x", "admin": True}, call_id="c2")
    assert extra.error_type == "ToolArgumentsError"
    assert extra.error_message is not None and "admin" in extra.error_message
    assert seen.texts == []


async def test_timeout_is_a_retryable_outcome() -> None:
    tools, _ = make()
    outcome = await tools.call("sleepy", {"text": "x"}, call_id="c1")
    assert outcome.status == "error"
    assert outcome.error_type == "ToolTimeoutError"
    assert outcome.retryable is True


async def test_timeout_error_raised_by_the_tool_is_not_our_deadline() -> None:
    tools, _ = make()
    outcome = await tools.call("inner_timeout", {"text": "x"}, call_id="c1")
    # Not ToolTimeoutError: the tool's own exception is no failure of ours.
    assert outcome.error_type == FailureKind.UNEXPECTED


async def test_exceptions_become_outcomes_with_kind_and_retry_hint() -> None:
    tools, _ = make()
    plain = await tools.call("broken", {"text": "x"}, call_id="c1")
    # A tool's own exception is an unexpected error (never its class name as a
    # new kind); the spec gives the retry hint.
    assert (plain.status, plain.error_type, plain.retryable) == (
        "error",
        FailureKind.UNEXPECTED,
        True,
    )
    assert plain.error_message == "backend rejected x"
    typed = await tools.call("http_terminal", {"text": "x"}, call_id="c2")
    assert (typed.error_type, typed.retryable) == ("ToolHTTPError", False)
    assert typed.error_message is not None and "404" in typed.error_message
    invalid = await tools.call("bad_result", {"text": "x"}, call_id="c3")
    assert invalid.error_type == "ToolError"


async def test_pii_tokens_are_revealed_to_the_tool_and_concealed_in_the_outcome() -> None:
    tools, seen = make()
    vault = {TOKEN: REAL}
    outcome = await tools.call("echo", {"text": TOKEN}, call_id="c1", pii_vault=vault)
    assert seen.texts == [REAL]  # the tool acted on the real value
    assert outcome.result == {"text": TOKEN}
    assert REAL not in outcome.model_dump_json()


async def test_pii_never_leaks_through_error_messages() -> None:
    tools, _ = make()
    vault = {TOKEN: REAL}
    failed = await tools.call("broken", {"text": TOKEN}, call_id="c1", pii_vault=vault)
    assert failed.error_message == f"backend rejected {TOKEN}"
    # A real value that fails validation is not echoed back either.
    long_real = "9" * 30
    rejected = await tools.call(
        "echo", {"text": "pii:k1:long"}, call_id="c2", pii_vault={"pii:k1:long": long_real}
    )
    assert rejected.error_type == "ToolArgumentsError"
    assert long_real not in json.dumps(rejected.model_dump())


def test_pii_swap_handles_embedded_and_prefix_tokens() -> None:
    swap = PiiSwap({"pii:k1:ab": "AAA", "pii:k1:abc": "CCC"})
    assert swap.reveal({"q": ["id pii:k1:abc and pii:k1:ab"]}) == {"q": ["id CCC and AAA"]}
    assert swap.conceal({"n": 3, "s": "CCC/AAA"}) == {"n": 3, "s": "pii:k1:abc/pii:k1:ab"}
    assert PiiSwap(None).reveal({"s": "pii:k1:ab"}) == {"s": "pii:k1:ab"}
