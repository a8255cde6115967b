"""Serving a simulator: an aiohttp app on a port, until SIGTERM or SIGINT.

The bureau and every agent's simulator (the claims example's) start and stop
the same way, so a stack can run them as ``python -m <module> --port N``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

__all__ = ["serve_until_stopped", "start_app"]


async def start_app(app: web.Application, host: str, port: int, **options: Any) -> web.AppRunner:
    """Start ``app`` on ``host:port`` (``port=0``: a free one, read it from
    ``runner.addresses[0][1]``); returns the runner, ``await runner.cleanup()``
    stops it. No access log (request paths may carry personal data);
    ``options`` go to ``web.AppRunner``."""
    runner = web.AppRunner(app, shutdown_timeout=2.0, access_log=None, **options)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def serve_until_stopped(start: Callable[[], Awaitable[web.AppRunner]], name: str) -> None:
    """Start a service with ``start``, print where it listens, run until SIGTERM
    or SIGINT, then stop it cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = await start()
    try:
        bound = runner.addresses[0]
        print(f"{name} listening on http://{bound[0]}:{bound[1]}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
