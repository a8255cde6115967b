"""The local stack without Docker: Kafka (KRaft), the embedded registry, the bureau.

``Stack(settings).up()`` brings up, in order and only what is not already up:

* Apache Kafka from Maven Central jars (``stack_kafka``), one broker+controller
  on ``127.0.0.1:<kafka_port>``; its data lives in ``<stack_dir>/kafka-data`` so
  ``down`` then ``up`` keeps every message;
* the embedded schema registry (``python -m flightrec.testing.registry``) on
  ``registry_port``, storing its state in Kafka;
* the bureau simulator (``python -m flightrec.testing.bureau``) on ``bureau_port``;
* the simulator each installed agent declares (``AgentDefinition.simulator``,
  see :func:`agent_services`), ``python -m <module>`` on its port.

A component whose recorded pid is alive and whose port answers is left alone,
so ``up`` is idempotent. ``up`` returns only when Kafka lists its topics, the
registry answers ``GET /subjects`` and the bureau answers ``GET /health``; on a
timeout or a crash the error carries the tail of that component's log.
``down`` stops only the processes ``up`` recorded in ``<stack_dir>/run``.

All ports and directories come from ``Settings``. The methods block (they
start processes and poll ports).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from flightrec.contracts.errors import StackError
from flightrec.contracts.settings import Settings
from flightrec.stack_kafka import KafkaLayout, ensure_formatted, fetch_kafka, java_command
from flightrec.stack_proc import (
    ProcessSpec,
    error_lines,
    http_ok,
    is_alive,
    port_open,
    read_pid,
    start_detached,
    stop_process,
    tail,
)

__all__ = ["ComponentStatus", "ServiceSpec", "Stack", "agent_services"]

_log = logging.getLogger(__name__)

_REGISTRY_MODULE = "flightrec.testing.registry"
_BUREAU_MODULE = "flightrec.testing.bureau"


@dataclass(frozen=True)
class ComponentStatus:
    """What runs where: one line of ``flightrec stack status``."""

    name: str
    address: str
    pid: int | None
    up: bool
    note: str = ""

    def render(self) -> str:
        """One aligned, human-readable line."""
        pid = str(self.pid) if self.pid is not None else "-"
        state = "up" if self.up else "down"
        note = f"  ({self.note})" if self.note else ""
        return f"{self.name:<18} {state:<5} pid {pid:<8} {self.address}{note}"


@dataclass(frozen=True)
class ServiceSpec:
    """A Python HTTP service the stack runs besides its own (an agent's simulator):
    ``python -m <module> --port <port>``, ready when ``GET <health>`` answers."""

    name: str
    module: str
    port: int
    health: str = "/health"


def agent_services(settings: Settings, also: Iterable[Any] = ()) -> tuple[ServiceSpec, ...]:
    """The simulators the installed agents (and the definitions in ``also``)
    declare, as stack services, one per agent name."""
    from flightrec.agents.registry import known_agents

    definitions = {d.name: d for d in known_agents(settings)}
    for definition in also:
        definitions.setdefault(definition.name, definition)
    return tuple(
        ServiceSpec(f"{d.name}-sim", d.simulator.module, d.simulator.port, d.simulator.health)
        for d in definitions.values()
        if d.simulator is not None
    )


@dataclass(frozen=True)
class _Component:
    name: str
    port: int
    address: str
    marker: str
    log_paths: tuple[Path, ...]
    pid_path: Path
    ready: Callable[[], bool]
    grace_s: float
    other_ports: tuple[int, ...] = ()  # must be free too before starting


class Stack:
    """Start, stop and inspect the local stack described by ``settings``."""

    def __init__(
        self,
        settings: Settings,
        *,
        wait_s: float = 180.0,
        services: tuple[ServiceSpec, ...] = (),
    ) -> None:
        self.settings = settings
        self.wait_s = wait_s
        self.services = services
        self.layout = KafkaLayout(settings)
        self.stack_dir = self.layout.stack_dir
        self.run_dir = self.stack_dir / "run"
        self.logs_dir = self.layout.logs_dir

    # -- public API -----------------------------------------------------------

    def fetch(self) -> Path:
        """Download Kafka's jars (once); return the ``libs`` directory."""
        return fetch_kafka(self.settings)

    def up(self) -> list[ComponentStatus]:
        """Start whatever is not running and wait until every component answers."""
        self.fetch()
        kafka, registry, bureau, *extra = self._components()
        started: set[str] = set()
        commands: dict[str, list[str]] = {}
        if self._needs_start(kafka):
            ensure_formatted(self.settings, self.layout)
            self._start(
                kafka,
                java_command(self.layout, "kafka.Kafka", str(self.layout.server_properties)),
                env=None,
            )
            started.add(kafka.name)
        if self._needs_start(bureau):
            argv = [sys.executable, "-m", _BUREAU_MODULE, "--port", str(self.settings.bureau_port)]
            self._start(bureau, argv, env=self._python_env())
            started.add(bureau.name)
            commands[bureau.name] = argv
        for component, spec in zip(extra, self.services, strict=True):
            if self._needs_start(component):
                argv = [sys.executable, "-m", spec.module, "--port", str(spec.port)]
                self._start(component, argv, env=self._python_env())
                started.add(component.name)
                commands[component.name] = argv
        self._wait(kafka)
        if self._needs_start(registry):
            argv = [
                sys.executable,
                "-m",
                _REGISTRY_MODULE,
                "--bootstrap-servers",
                f"127.0.0.1:{self.settings.kafka_port}",
                "--port",
                str(self.settings.registry_port),
                "--topic",
                self.settings.topics.schemas,
            ]
            self._start(registry, argv, env=self._python_env())
            started.add(registry.name)
            commands[registry.name] = argv
        for component in (bureau, *extra, registry):
            try:
                self._wait(component)
            except StackError:
                again = commands.get(component.name)
                if again is None or self._our_pid(component) is not None:
                    raise
                # A Python component that died before answering is started once
                # more; a second failure is reported as is. (The case that
                # prompted this was a live process caught mid-exec, now
                # recognised by is_alive; the retry stays as a safety net.)
                _log.warning("%s exited before it answered; starting it once more", component.name)
                self._start(component, again, env=self._python_env())
                self._wait(component)
        statuses = self.status()
        for status in statuses:
            verb = "started" if status.name in started else "already running"
            if status.up:
                _log.info("%s %s at %s (pid %s)", status.name, verb, status.address, status.pid)
        return statuses

    def down(self) -> list[ComponentStatus]:
        """Stop what ``up`` started (registry and bureau first, Kafka last)."""
        stopped: list[ComponentStatus] = []
        for component in reversed(self._components()):
            pid = stop_process(component.pid_path, component.marker, grace_s=component.grace_s)
            if pid is not None:
                _log.info("%s stopped (pid %s)", component.name, pid)
            stopped.append(ComponentStatus(component.name, component.address, pid, False))
        return stopped

    def status(self) -> list[ComponentStatus]:
        """What runs where; ``up`` means the component answers on its port."""
        statuses: list[ComponentStatus] = []
        for component in self._components():
            pid = self._our_pid(component)
            note = ""
            if pid is None and port_open(component.port):
                note = "port answered by a process this stack did not start"
            statuses.append(
                ComponentStatus(component.name, component.address, pid, component.ready(), note)
            )
        return statuses

    # -- internals ------------------------------------------------------------

    def _components(self) -> tuple[_Component, ...]:
        s = self.settings
        kafka = _Component(
            name="kafka",
            port=s.kafka_port,
            address=f"127.0.0.1:{s.kafka_port}",
            # The broker's own config file: unique per stack directory.
            marker=str(self.layout.server_properties),
            log_paths=(self.layout.stdout_file, self.layout.log_file),
            pid_path=self.run_dir / "kafka.pid",
            ready=self._kafka_ready,
            grace_s=30.0,
            other_ports=(s.kafka_controller_port,),
        )
        registry = self._python_component(
            "registry", s.registry_port, _REGISTRY_MODULE, "/subjects"
        )
        bureau = self._python_component("bureau", s.bureau_port, _BUREAU_MODULE, "/health")
        extra = tuple(
            self._python_component(spec.name, spec.port, spec.module, spec.health)
            for spec in self.services
        )
        return kafka, registry, bureau, *extra

    def _python_component(self, name: str, port: int, module: str, probe: str) -> _Component:
        """A ``python -m module`` HTTP service, ready when ``GET probe`` answers."""
        url = f"http://127.0.0.1:{port}"
        return _Component(
            name=name,
            port=port,
            address=url,
            marker=module,
            log_paths=(self.logs_dir / f"{name}.log",),
            pid_path=self.run_dir / f"{name}.pid",
            ready=lambda: http_ok(f"{url}{probe}"),
            grace_s=10.0,
        )

    def _our_pid(self, component: _Component) -> int | None:
        pid = read_pid(component.pid_path)
        if pid is not None and is_alive(pid, component.marker):
            return pid
        return None

    def _needs_start(self, component: _Component) -> bool:
        if self._our_pid(component) is not None:
            return False  # running (or still starting): _wait decides if it is healthy
        component.pid_path.unlink(missing_ok=True)  # stale
        for port in (component.port, *component.other_ports):
            if port_open(port):
                raise StackError(
                    f"port {port} for {component.name} is in use by a process this "
                    "stack did not start; stop it or choose another port in the settings",
                    component=component.name,
                    port=port,
                )
        return True

    def _start(self, component: _Component, argv: list[str], env: dict[str, str] | None) -> None:
        spec = ProcessSpec(
            name=component.name,
            argv=argv,
            marker=component.marker,
            log_path=component.log_paths[0],
            pid_path=component.pid_path,
            cwd=self.stack_dir,
            env=env,
        )
        pid = start_detached(spec)
        _log.info("starting %s (pid %s), log %s", component.name, pid, component.log_paths[-1])

    def _wait(self, component: _Component) -> None:
        deadline = time.monotonic() + self.wait_s
        while True:
            if component.ready():
                return
            if self._our_pid(component) is None:
                raise self._failure(component, "exited before it answered")
            if time.monotonic() > deadline:
                raise self._failure(component, f"did not answer within {self.wait_s:.0f} s")
            time.sleep(0.25)

    def _failure(self, component: _Component, what: str) -> StackError:
        errors = [line for path in component.log_paths for line in error_lines(path)]
        logs = "\n".join(
            f"--- {path} ---\n{tail(path)}" for path in component.log_paths if path.exists()
        )
        summary = "errors:\n" + "\n".join(errors) + "\n" if errors else ""
        return StackError(
            f"{component.name} {what} on {component.address}; {summary}last log lines:\n{logs}",
            component=component.name,
        )

    def _python_env(self) -> dict[str, str]:
        # The children see the same settings as the stack that starts them.
        env = dict(os.environ)
        env.update(self.settings.to_env())
        return env

    def _kafka_ready(self) -> bool:
        port = self.settings.kafka_port
        if not port_open(port):
            return False
        # librdkafka logs connection errors while the broker starts; route
        # them through logging instead of stderr.
        admin = AdminClient(
            {"bootstrap.servers": f"127.0.0.1:{port}"},
            logger=logging.getLogger("flightrec.stack.probe"),
        )
        try:
            metadata = admin.list_topics(timeout=3)
        except KafkaException:
            return False
        return bool(metadata.brokers)
