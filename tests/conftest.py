"""Shared fixtures: the local stack, once per session, and per-test settings.

``stack`` (session) starts Kafka, the embedded registry and the bureau simulator
on test ports from a fresh ``.flightrec/test-stack`` directory and stops them at
the end; with ``FLIGHTREC_TEST_USE_RUNNING=1`` it uses the stack described by
the environment (``FLIGHTREC_*``) and starts nothing. ``settings`` (function)
gives each test its own topic prefix with every topic created, so tests never
see each other's records. Several pytest processes at once (xdist workers,
two terminals) share one session stack: the first starts it from empty state,
the last stops it. Only tests that ask for one of the two fixtures
start the stack; unit tests never do.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flightrec.contracts.settings import Settings, Topics
from flightrec.kafka.topics import ensure_topics
from flightrec.stack import Stack

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_STACK_DIR = REPO_ROOT / ".flightrec" / "test-stack"

# Ports of the session stack: apart from the defaults of `flightrec stack up`
# (19092, ...) so tests never touch a developer's running stack, and below
# Linux's ephemeral range (32768+), where a client's outgoing connection can
# hold the port a listener is about to bind.
TEST_PORTS = {
    "FLIGHTREC_KAFKA_PORT": "29192",
    "FLIGHTREC_KAFKA_CONTROLLER_PORT": "29193",
    "FLIGHTREC_REGISTRY_PORT": "28181",
    "FLIGHTREC_BUREAU_PORT": "28190",
}


def pytest_configure(config: pytest.Config) -> None:
    # Declared in pyproject too; repeated here so the markers exist even when
    # pytest runs with another configuration file.
    config.addinivalue_line(
        "markers",
        "integration: needs the real local stack (Kafka + registry), started once per session",
    )
    config.addinivalue_line("markers", "slow: long fault tests")


def session_stack_settings() -> Settings:
    """The base settings of the session stack (ports above, fresh directory)."""
    return Settings.from_env({**TEST_PORTS, "FLIGHTREC_STACK_DIR": str(TEST_STACK_DIR)})


def _wipe_state(local: Stack) -> None:
    """Remove everything under the test stack directory except downloaded jars."""
    if not TEST_STACK_DIR.exists():
        return
    jars = local.layout.home.parent  # <stack_dir>/kafka: a pure download cache
    keep = local.layout.fetched
    for child in TEST_STACK_DIR.iterdir():
        if keep and child == jars:
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


@contextlib.contextmanager
def _shared_stack(local: Stack) -> Iterator[None]:
    """Start the stack fresh, or join it when another pytest process uses it.

    Two ``flock`` files count the sessions: every session holds ``users``
    shared while it runs; whoever gets it exclusively is alone, so it may wipe
    and start (first in) or stop (last out). ``setup`` serialises those
    decisions. Parallel sessions (xdist workers, two terminals) therefore share
    one stack instead of stopping each other's.
    """
    TEST_STACK_DIR.parent.mkdir(parents=True, exist_ok=True)
    setup_path = TEST_STACK_DIR.parent / "test-stack.setup.lock"
    users_path = TEST_STACK_DIR.parent / "test-stack.users.lock"
    with setup_path.open("a") as setup, users_path.open("a") as users:
        fcntl.flock(setup, fcntl.LOCK_EX)
        try:
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                alone = True
            except BlockingIOError:
                alone = False
            if alone:
                # A session that crashed may have left processes running: stop
                # them through their pid files, then start from empty state.
                local.down()
                _wipe_state(local)
            fcntl.flock(users, fcntl.LOCK_SH)
            try:
                local.up()  # idempotent when another session started it
            except BaseException:
                # Half a stack must not outlive a failed start (it would hold
                # the ports of the next session).
                if alone:
                    local.down()
                fcntl.flock(users, fcntl.LOCK_UN)
                raise
        finally:
            fcntl.flock(setup, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(setup, fcntl.LOCK_EX)
            try:
                fcntl.flock(users, fcntl.LOCK_UN)
                try:
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    last = True
                except BlockingIOError:
                    last = False
                if last:
                    local.down()
                    fcntl.flock(users, fcntl.LOCK_UN)
            finally:
                fcntl.flock(setup, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    """Base ``Settings`` of a running local stack (started here unless told not to)."""
    if os.environ.get("FLIGHTREC_TEST_USE_RUNNING") == "1":
        yield Settings.from_env()
        return
    base = session_stack_settings()
    with _shared_stack(Stack(base)):
        yield base


@pytest.fixture
def settings(stack: Settings) -> Settings:
    """Settings with a unique topic prefix for this test; all its topics exist."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    scoped = stack.model_copy(update={"topics": Topics().with_prefix(prefix)})
    ensure_topics(scoped)
    return scoped
