"""The bureau simulator: endpoints over real HTTP, determinism, spread, faults, CLI."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from flightrec.testing.bureau import credit_report, income_check, start_bureau

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    runner = await start_bureau("127.0.0.1", 0, slow_s=5.0)
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_health_and_reports_over_http(base_url: str) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with session.get(f"{base_url}/health") as resp:
            assert resp.status == 200
            assert await resp.json() == {"status": "ok"}
        async with session.post(f"{base_url}/v1/reports", json={"national_id": "A-1"}) as resp:
            assert resp.status == 200
            assert await resp.json() == credit_report("A-1")
        body = {
            "application_id": "app-9",
            "declared_annual_income": 31000,
            "employment_status": "RETIRED",
            "employment_years": 0,
        }
        async with session.post(f"{base_url}/v1/income", json=body) as resp:
            assert resp.status == 200
            assert await resp.json() == income_check("app-9", 31000.0, "RETIRED", 0.0)


async def test_bad_requests_are_400(base_url: str) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with session.post(f"{base_url}/v1/reports", data=b"{not json") as resp:
            assert resp.status == 400
        async with session.post(f"{base_url}/v1/reports", json={"id": "x"}) as resp:
            assert resp.status == 400
        async with session.post(f"{base_url}/v1/income", json={"application_id": "a"}) as resp:
            assert resp.status == 400


async def test_fault_hooks(base_url: str) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with session.post(f"{base_url}/v1/reports", json={"national_id": "FAIL500x"}) as r:
            assert r.status == 500
        income = {
            "application_id": "FAIL500-app",
            "declared_annual_income": 1,
            "employment_status": "EMPLOYED",
            "employment_years": 1,
        }
        async with session.post(f"{base_url}/v1/income", json=income) as r:
            assert r.status == 500
        with pytest.raises(TimeoutError):
            async with session.post(
                f"{base_url}/v1/reports",
                json={"national_id": "SLOW-1"},
                timeout=aiohttp.ClientTimeout(total=0.2),
            ):
                pass


def test_reports_are_deterministic_and_vary_by_id() -> None:
    assert credit_report("111-22-3333") == credit_report("111-22-3333")
    assert credit_report("111-22-3333") != credit_report("111-22-3334")
    assert income_check("a", 50000, "EMPLOYED", 3) == income_check("a", 50000, "employed", 3)


def test_score_spread_gives_every_band() -> None:
    reports = [credit_report(f"{i:03d}-{i % 97:02d}-{i * 7919 % 10000:04d}") for i in range(2000)]
    scores = [r["credit_score"] for r in reports]
    assert all(300 <= s <= 850 for s in scores)
    # Bands of the standard policy: decline < 580 <= refer < 660 <= approve.
    bands = Counter("decline" if s < 580 else "refer" if s < 660 else "approve" for s in scores)
    assert bands["approve"] > bands["refer"] > bands["decline"] > 0.03 * len(scores)
    # Bad scores carry a worse history than good ones.
    low = [r for r in reports if r["credit_score"] < 600]
    high = [r for r in reports if r["credit_score"] > 750]

    def avg(rs: list[dict[str, Any]]) -> float:
        return float(sum(r["delinquencies_24m"] for r in rs)) / len(rs)

    assert avg(low) > avg(high)
    assert all(r["bankruptcies"] == 0 for r in high)


def test_income_rules() -> None:
    retired = income_check("r", 30000, "RETIRED", 0)
    assert retired["verified"] and retired["method"] == "pension_statement"
    assert 28500 <= retired["verified_annual_income"] <= 30000
    newcomer = income_check("s", 80000, "SELF_EMPLOYED", 0.5)
    assert not newcomer["verified"] and newcomer["method"] == "tax_return"
    student = income_check("t", 40000, "STUDENT", 1)
    assert not student["verified"]  # declared more than bank statements can show
    employed = [income_check(f"e{i}", 50000 + i, "EMPLOYED", 5) for i in range(400)]
    share = sum(e["verified"] for e in employed) / len(employed)
    assert 0.8 < share < 0.99  # most verify, some declared too much


def test_income_verification_follows_the_data_not_the_application_id() -> None:
    # A seeded demo must decide the same way on every run, whatever ids it uses.
    for declared in (18500.0, 52000.0, 97310.55):
        results = {str(income_check(f"app-{i}", declared, "EMPLOYED", 3)) for i in range(20)}
        assert len(results) == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_module_runs_and_stops_cleanly_on_sigterm() -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flightrec.testing.bureau",
        "--port",
        str(port),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        assert f":{port}" in line.decode()
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(f"http://127.0.0.1:{port}/health") as resp,
        ):
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0, stderr.decode()
        assert b"Traceback" not in stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
