"""``FakeOpenAIServer``: a local OpenAI-compatible chat completions endpoint.

It speaks ``POST /v1/chat/completions`` over real HTTP, answers from a queue of
scripted responses (status, headers, JSON body, delay) and records every
request it received, so the real ``openai`` client code path runs in tests.
Past the end of the queue it answers 500 with an explanatory error body.

    async with FakeOpenAIServer() as server:
        server.enqueue(ScriptedResponse.step(step))
        model = OpenAIModel(base_url=server.base_url, model="gpt-test")
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from flightrec.agents.steps import AgentStep
from flightrec.contracts.events import canonical_json

__all__ = ["FakeOpenAIServer", "ScriptedResponse", "completion_body"]


def completion_body(
    content: str | None,
    *,
    refusal: str | None = None,
    finish_reason: str = "stop",
    model: str = "gpt-test",
    response_id: str = "chatcmpl-test",
    prompt_tokens: int = 120,
    completion_tokens: int = 40,
) -> dict[str, Any]:
    """A chat completion body as the OpenAI API returns it."""
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": finish_reason,
                "logprobs": None,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@dataclass(frozen=True)
class ScriptedResponse:
    """One answer of the fake server."""

    status: int = 200
    body: dict[str, Any] | str = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    @classmethod
    def step(cls, step: AgentStep, **body_kwargs: Any) -> ScriptedResponse:
        """A 200 with ``step`` as the structured output."""
        return cls(
            body=completion_body(canonical_json(step.model_dump(mode="json")), **body_kwargs)
        )

    @classmethod
    def content(cls, text: str, **body_kwargs: Any) -> ScriptedResponse:
        """A 200 whose message content is ``text`` (valid or not)."""
        return cls(body=completion_body(text, **body_kwargs))

    @classmethod
    def refusal(cls, text: str = "I can't help with that.") -> ScriptedResponse:
        """A 200 where the model refused (``content`` null, ``refusal`` set)."""
        return cls(body=completion_body(None, refusal=text))

    @classmethod
    def error(
        cls, status: int, message: str = "error", headers: dict[str, str] | None = None
    ) -> ScriptedResponse:
        """An API error in OpenAI's error body shape."""
        body = {"error": {"message": message, "type": "server_error", "code": None, "param": None}}
        return cls(status=status, body=body, headers=headers or {})


class FakeOpenAIServer:
    """Scripted OpenAI-compatible server on a free local port (async context manager)."""

    def __init__(
        self, responses: list[ScriptedResponse] | None = None, host: str = "127.0.0.1"
    ) -> None:
        self._queue: deque[ScriptedResponse] = deque(responses or [])
        self._host = host
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.requests: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give an OpenAI client (ends in ``/v1``)."""
        if self._runner is None:
            raise RuntimeError("the server is not started")
        return f"http://{self._host}:{self._port}/v1"

    @property
    def pending(self) -> int:
        """Scripted responses not served yet."""
        return len(self._queue)

    def enqueue(self, *responses: ScriptedResponse) -> None:
        """Add answers to the end of the queue."""
        self._queue.extend(responses)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        if not self._queue:
            return web.json_response(
                {"error": {"message": "no scripted response left", "type": "server_error"}},
                status=500,
            )
        answer = self._queue.popleft()
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        text = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
        return web.Response(
            status=answer.status, text=text, headers=answer.headers, content_type="application/json"
        )

    async def start(self) -> None:
        """Listen on a free port."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        # handler_cancellation: a client that times out cancels a delayed
        # handler, so stopping the server never waits for a scripted delay.
        runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, 0)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
