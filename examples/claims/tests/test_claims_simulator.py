"""The policy simulator over loopback HTTP: deterministic answers, 404 for
numbers it does not know, and no policy number in an error body."""

from __future__ import annotations

import aiohttp

from flightrec_claims.simulator import claim_history, coverage

from claims_support import ClaimsEnv


async def get(url: str) -> tuple[int, object]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.json()


async def test_health(claims_env: ClaimsEnv) -> None:
    assert await get(f"{claims_env.url}/health") == (200, {"status": "ok"})


async def test_answers_are_derived_from_the_policy_number(claims_env: ClaimsEnv) -> None:
    known = [f"POL-{n:06d}" for n in range(40) if coverage(f"POL-{n:06d}") is not None]
    assert len(known) > 30
    for number in known[:5]:
        status, body = await get(f"{claims_env.url}/v1/policies/{number}")
        assert (status, body) == (200, coverage(number))
        status, body = await get(f"{claims_env.url}/v1/policies/{number}/claims")
        assert (status, body) == (200, claim_history(number))
    # Same number, same answer; different numbers, different answers.
    assert coverage(known[0]) == coverage(known[0])
    assert len({str(coverage(n)) for n in known}) == len(known)
    histories = [claim_history(n) for n in known]
    assert any(h and h["claims"] for h in histories) and any(h == {"claims": []} for h in histories)


async def test_unknown_and_malformed_numbers_get_404_without_the_number(
    claims_env: ClaimsEnv,
) -> None:
    unknown = next(f"POL-{n:06d}" for n in range(1000) if coverage(f"POL-{n:06d}") is None)
    for number in (unknown, "LEGACY-0042", "pol-123456", "POL-12345"):
        for suffix in ("", "/claims"):
            status, body = await get(f"{claims_env.url}/v1/policies/{number}{suffix}")
            assert status == 404 and body == {"error": "no such policy"}
