"""``python -m flightrec.testing.registry``: run the embedded registry until SIGTERM / SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from flightrec.testing.registry.server import start_registry
from flightrec.testing.registry.storage import StorageError

__all__ = ["main", "parse_args"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m flightrec.testing.registry",
        description="Schema registry speaking the Confluent REST API, state in Kafka.",
    )
    parser.add_argument("--bootstrap-servers", required=True, help="Kafka HOST:PORT list")
    parser.add_argument("--port", type=int, required=True, help="HTTP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--topic", default="_schemas", help="compacted storage topic")
    parser.add_argument(
        "--replication-factor",
        type=int,
        default=-1,
        help="of the storage topic when created (-1: the broker's default)",
    )
    parser.add_argument(
        "-X",
        dest="kafka",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra librdkafka property (repeatable), e.g. -X security.protocol=SSL",
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> int:
    kafka_config = dict(item.split("=", 1) for item in args.kafka if "=" in item)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        registry = await start_registry(
            args.bootstrap_servers,
            args.port,
            args.topic,
            host=args.host,
            kafka_config=kafka_config,
            replication_factor=args.replication_factor,
        )
    except (StorageError, OSError) as exc:
        logging.getLogger("flightrec.testing.registry").error("cannot start: %s", exc)
        return 1
    # The line a supervising process can wait for.
    logging.getLogger("flightrec.testing.registry").info("ready on %s", registry.url)
    try:
        await stop.wait()
    finally:
        logging.getLogger("flightrec.testing.registry").info("stopping")
        await registry.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; logs go to stderr."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    args = parse_args(argv)
    # First line of the log: an empty log then means the process never ran.
    logging.getLogger("flightrec.testing.registry").info(
        "starting (pid %d) on port %d, storage topic %s", os.getpid(), args.port, args.topic
    )
    return asyncio.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
