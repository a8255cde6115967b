"""A credit bureau simulator (aiohttp), for the local stack, the demo and tests.

Endpoints::

    GET  /health       -> {"status": "ok"}
    POST /v1/reports   {"national_id"} -> credit report
    POST /v1/income    {"application_id", "declared_annual_income",
                        "employment_status", "employment_years"} -> income check

Answers are deterministic: every figure is drawn from the SHA-256 of the
inputs, so the same applicant always gets the same report and a recorded run can
be compared with a live one. Scores follow a bell curve around 695 (sd 80,
clipped to 300-850), so a synthetic population yields approvals, referrals and
declines under the policies of :mod:`flightrec.tools.loan_policy`.

Fault hooks, for tests and the demo: a ``national_id`` (or ``application_id``)
starting with ``FAIL500`` answers HTTP 500; one starting with ``SLOW`` sleeps
``slow_s`` seconds (longer than any tool timeout) before answering.

Run it with ``python -m flightrec.testing.bureau --port 18090 [--host 127.0.0.1]``; SIGTERM
or SIGINT stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

from aiohttp import web

from flightrec.testing.http_service import serve_until_stopped, start_app

__all__ = [
    "DEFAULT_SLOW_S",
    "build_app",
    "credit_report",
    "income_check",
    "main",
    "serve",
    "start_bureau",
]

DEFAULT_SLOW_S = 30.0
_SCORES = NormalDist(mu=695.0, sigma=80.0)
_MAX_BODY = 64 * 1024
_SLOW_KEY = web.AppKey("slow_s", float)


class _Draws:
    """Uniform numbers in (0, 1) from the SHA-256 of a label and the inputs."""

    def __init__(self, label: str, *parts: object) -> None:
        seed = "\x00".join([label, *(str(p) for p in parts)]).encode()
        self._digest = hashlib.sha256(seed).digest()
        self._i = 0

    def uniform(self) -> float:
        # 4 bytes per draw, 8 draws per digest; rehash when exhausted.
        if self._i + 4 > len(self._digest):
            self._digest = hashlib.sha256(self._digest).digest()
            self._i = 0
        n = int.from_bytes(self._digest[self._i : self._i + 4], "big")
        self._i += 4
        return (n + 0.5) / 2**32

    def hexref(self) -> str:
        return hashlib.sha256(self._digest).hexdigest()[:16]


def credit_report(national_id: str) -> dict[str, Any]:
    """The deterministic report for ``national_id`` (the ``/v1/reports`` body)."""
    d = _Draws("report", national_id)
    score = round(min(850.0, max(300.0, _SCORES.inv_cdf(d.uniform()))))
    # Lower scores come with the history that explains them.
    risk = (850 - score) / 550  # 0 (best) .. 1 (worst)
    delinquencies = int(d.uniform() * 6 * risk**1.5)
    bankruptcies = 1 if score < 560 and d.uniform() < 0.35 else 0
    open_accounts = 1 + int(d.uniform() * 11)
    total_debt = round(d.uniform() * 45000 * (0.4 + risk), 2)
    return {
        "credit_score": score,
        "open_accounts": open_accounts,
        "delinquencies_24m": delinquencies,
        "bankruptcies": bankruptcies,
        "total_debt": total_debt,
        "bureau_ref": "BR-" + d.hexref(),
    }


_METHODS = {
    "EMPLOYED": "payroll",
    "SELF_EMPLOYED": "tax_return",
    "RETIRED": "pension_statement",
    "UNEMPLOYED": "bank_statements",
    "STUDENT": "bank_statements",
}


def income_check(
    application_id: str,
    declared_annual_income: float,
    employment_status: str,
    employment_years: float,
) -> dict[str, Any]:
    """The deterministic income verification (the ``/v1/income`` body).

    Drawn from what the application declares, not from its id: the same
    applicant data always verifies the same way, so a demo run from a fixed
    seed gives the same outcomes whatever ids that run gives its applications.
    """
    status = employment_status.strip().upper()
    d = _Draws("income", f"{declared_annual_income:.2f}", status, employment_years)
    u, v = d.uniform(), d.uniform()
    if status == "EMPLOYED":
        # 8% declared more than payroll shows.
        if u < 0.08:
            verified, ratio, confidence = False, 0.55 + 0.2 * v, 0.85
        else:
            verified, ratio, confidence = True, 0.92 + 0.1 * v, 0.9 + 0.08 * u
    elif status == "SELF_EMPLOYED":
        if employment_years < 2 or u < 0.15:  # too little trading history
            verified, ratio, confidence = False, 0.6 + 0.25 * v, 0.5
        else:
            verified, ratio, confidence = True, 0.8 + 0.2 * v, 0.75 + 0.1 * u
    elif status == "RETIRED":
        verified, ratio, confidence = True, 0.95 + 0.05 * v, 0.95
    else:  # UNEMPLOYED, STUDENT, anything unknown: bank statements only
        verified = declared_annual_income < 15000 and u > 0.3
        ratio, confidence = 0.5 + 0.4 * v, 0.4 + 0.2 * u
    return {
        "verified": verified,
        "verified_annual_income": round(max(0.0, declared_annual_income) * ratio, 2),
        "method": _METHODS.get(status, "bank_statements"),
        "confidence": round(confidence, 3),
    }


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > _MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=_MAX_BODY, actual_size=request.content_length)
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(reason="body is not JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="body must be an object")
    return body


async def _fault(request: web.Request, key: str) -> None:
    if key.startswith("FAIL500"):
        raise web.HTTPInternalServerError(reason="simulated bureau failure")
    if key.startswith("SLOW"):
        await asyncio.sleep(request.app[_SLOW_KEY])


async def _health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _reports(request: web.Request) -> web.Response:
    body = await _json_body(request)
    national_id = body.get("national_id")
    if not isinstance(national_id, str) or not national_id:
        raise web.HTTPBadRequest(reason="national_id is required")
    await _fault(request, national_id)
    return web.json_response(credit_report(national_id))


async def _income(request: web.Request) -> web.Response:
    body = await _json_body(request)
    try:
        application_id = str(body["application_id"])
        declared = float(body["declared_annual_income"])
        status = str(body["employment_status"])
        years = float(body["employment_years"])
    except (KeyError, TypeError, ValueError):
        raise web.HTTPBadRequest(reason="missing or malformed income fields") from None
    await _fault(request, application_id)
    return web.json_response(income_check(application_id, declared, status, years))


def build_app(*, slow_s: float = DEFAULT_SLOW_S) -> web.Application:
    """The simulator's aiohttp application."""
    app = web.Application(client_max_size=_MAX_BODY)
    app[_SLOW_KEY] = slow_s
    app.router.add_get("/health", _health)
    app.router.add_post("/v1/reports", _reports)
    app.router.add_post("/v1/income", _income)
    return app


async def start_bureau(
    host: str = "127.0.0.1", port: int = 0, *, slow_s: float = DEFAULT_SLOW_S
) -> web.AppRunner:
    """Start the simulator; returns the runner (``await runner.cleanup()`` stops it).

    ``port=0`` picks a free port: read it from ``runner.addresses[0][1]``.
    """
    # handler_cancellation: a client that gives up (tool timeout) cancels the
    # slow handler, so shutdown does not wait for sleeping fault handlers.
    return await start_app(build_app(slow_s=slow_s), host, port, handler_cancellation=True)


async def serve(host: str, port: int, *, slow_s: float = DEFAULT_SLOW_S) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly."""
    await serve_until_stopped(lambda: start_bureau(host, port, slow_s=slow_s), "bureau simulator")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flightrec.testing.bureau --port N [--host H] [--slow-seconds S]``."""
    parser = argparse.ArgumentParser(
        prog="python -m flightrec.testing.bureau", description="Credit bureau simulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slow-seconds", type=float, default=DEFAULT_SLOW_S)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, slow_s=args.slow_seconds))
    return 0
