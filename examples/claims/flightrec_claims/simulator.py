"""A policy administration simulator (aiohttp), for the local stack, the demo and tests.

Endpoints::

    GET /health                               -> {"status": "ok"}
    GET /v1/policies/{policy_number}          -> coverage
    GET /v1/policies/{policy_number}/claims   -> {"claims": [past claim, ...]}

Answers are deterministic: every figure is drawn from the SHA-256 of the
policy number, so the same policy always gets the same coverage and history
and a recorded run can be compared with a live one. Policy numbers look like
``POL-123456``; a malformed one, or one no policy has (about one in twenty),
gets 404 with a JSON error that does not repeat the number.

Run it with ``python -m flightrec_claims.simulator --port 18091 [--host 127.0.0.1]``;
SIGTERM or SIGINT stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import re
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from flightrec.testing.http_service import serve_until_stopped, start_app
from flightrec_claims.models import CLAIM_TYPES

__all__ = ["build_app", "claim_history", "coverage", "main", "serve", "start_simulator"]

_POLICY_NUMBER = re.compile(r"^POL-[0-9]{6}$")
_UNKNOWN_SHARE = 0.05
_LIMITS = (2_000.0, 5_000.0, 10_000.0, 25_000.0, 50_000.0, 100_000.0)
_DEDUCTIBLES = (0.0, 100.0, 250.0, 500.0, 1_000.0)
_HISTORY_START = date(2019, 1, 1)


def _draws(label: str, policy_number: str) -> random.Random:
    """A generator seeded by the SHA-256 of ``label`` and the policy number."""
    digest = hashlib.sha256(f"{label}\x00{policy_number}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _exists(policy_number: str) -> bool:
    return bool(_POLICY_NUMBER.match(policy_number)) and (
        _draws("exists", policy_number).random() >= _UNKNOWN_SHARE
    )


def coverage(policy_number: str) -> dict[str, Any] | None:
    """The coverage of ``policy_number`` (the ``/v1/policies/{n}`` body), None if unknown."""
    if not _exists(policy_number):
        return None
    rng = _draws("coverage", policy_number)
    covered = [t for t in CLAIM_TYPES if rng.random() < 0.85] or [rng.choice(CLAIM_TYPES)]
    return {
        "policy_number": policy_number,
        "active": rng.random() < 0.9,
        "coverage_limit": rng.choice(_LIMITS),
        "deductible": rng.choice(_DEDUCTIBLES),
        "covered_types": covered,
    }


def claim_history(policy_number: str) -> dict[str, Any] | None:
    """Past claims on ``policy_number``, oldest first (the ``.../claims`` body), None if unknown."""
    if not _exists(policy_number):
        return None
    rng = _draws("history", policy_number)
    count = rng.choices((0, 1, 2, 3, 4), weights=(65, 18, 9, 5, 3))[0]
    claims = [
        {
            "date": (_HISTORY_START + timedelta(days=rng.randrange(6 * 365))).isoformat(),
            "claim_type": rng.choice(CLAIM_TYPES),
            "amount": round(rng.lognormvariate(7.5, 1.0), 2),
            "outcome": rng.choices(("PAID", "DENIED", "WITHDRAWN"), weights=(80, 12, 8))[0],
        }
        for _ in range(count)
    ]
    return {"claims": sorted(claims, key=lambda c: str(c["date"]))}


def _found(body: dict[str, Any] | None) -> web.Response:
    if body is None:
        # No echo of the number: it is personal data, and 404 bodies end up in logs.
        return web.json_response({"error": "no such policy"}, status=404)
    return web.json_response(body)


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _coverage(request: web.Request) -> web.Response:
    return _found(coverage(request.match_info["policy_number"]))


async def _claims(request: web.Request) -> web.Response:
    return _found(claim_history(request.match_info["policy_number"]))


def build_app() -> web.Application:
    """The simulator's aiohttp application."""
    app = web.Application()
    app.router.add_get("/health", _health)
    app.router.add_get("/v1/policies/{policy_number}", _coverage)
    app.router.add_get("/v1/policies/{policy_number}/claims", _claims)
    return app


async def start_simulator(host: str = "127.0.0.1", port: int = 0) -> web.AppRunner:
    """Start the simulator; returns the runner (``await runner.cleanup()`` stops it).

    ``port=0`` picks a free port: read it from ``runner.addresses[0][1]``.
    """
    # start_app keeps no access log: request paths carry policy numbers.
    return await start_app(build_app(), host, port)


async def serve(host: str, port: int) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly."""
    await serve_until_stopped(lambda: start_simulator(host, port), "claims simulator")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flightrec_claims.simulator --port N [--host H]``."""
    parser = argparse.ArgumentParser(
        prog="python -m flightrec_claims.simulator", description="Claims policy simulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
