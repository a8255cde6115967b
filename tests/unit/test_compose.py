"""docker-compose.yml: the services exist, their ports agree, every FLIGHTREC_* is real,
and the contracts are registered before the worker starts."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr

from flightrec.cli import build_parser
from flightrec.contracts.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?-(?P<default>[^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def _services(compose: dict[str, Any]) -> dict[str, Any]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def _env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    # Compose interpolation: the value used when the variable is not set.
    return {
        key: _INTERPOLATION.sub(lambda m: m.group("default") or "", str(value))
        for key, value in raw.items()
    }


def _container_ports(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port."""
    ports: dict[int, int] = {}
    for entry in service.get("ports", []):
        host, container = str(entry).split("/")[0].rsplit(":", 1)[-2:]
        ports[int(container)] = int(host)
    return ports


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    result: dict[str, tuple[str, int]] = {}
    for item in value.split(","):
        name, address = item.split("://", 1)
        host, port = address.rsplit(":", 1)
        result[name] = (host, int(port))
    return result


def test_the_four_services_are_declared(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert {"kafka", "schema-registry", "jaeger", "worker"} <= set(services)
    assert services["kafka"]["image"] == f"apache/kafka:{Settings().kafka_version}"
    assert services["schema-registry"]["image"].startswith("confluentinc/cp-schema-registry:")
    assert services["jaeger"]["image"].startswith("jaegertracing/all-in-one:")
    for name in ("kafka", "schema-registry", "jaeger"):
        tag = services[name]["image"].rsplit(":", 1)[-1]
        assert tag != "latest" and tag[0].isdigit(), f"{name} image is not pinned"
    assert "build" in services["worker"]
    assert services["worker"]["command"] == ["worker"]
    assert (REPO_ROOT / "Dockerfile").is_file()


def test_kafka_listeners_and_published_ports_agree(compose: dict[str, Any]) -> None:
    kafka = _env(_services(compose)["kafka"])
    listeners = _listeners(kafka["KAFKA_LISTENERS"])
    advertised = _listeners(kafka["KAFKA_ADVERTISED_LISTENERS"])
    published = _container_ports(_services(compose)["kafka"])
    for container_port in published:
        assert container_port in {port for _, port in listeners.values()}
    assert set(advertised) <= set(listeners)
    for name, (_, port) in advertised.items():
        assert listeners[name][1] == port
    # The host-facing listener advertises the port published on the host.
    external_port = advertised["EXTERNAL"][1]
    assert published[external_port] == external_port
    voter_host_port = kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"].split("@", 1)[1]
    assert int(voter_host_port.rsplit(":", 1)[1]) == listeners["CONTROLLER"][1]
    assert kafka["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert kafka["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised


def test_clients_point_at_what_the_services_listen_on(compose: dict[str, Any]) -> None:
    services = _services(compose)
    advertised = _listeners(_env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"])
    internal = {f"{host}:{port}" for host, port in advertised.values()}
    worker = _env(services["worker"])
    assert worker["FLIGHTREC_KAFKA_BOOTSTRAP_SERVERS"] in internal

    registry = _env(services["schema-registry"])
    store = registry["SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"].split("://", 1)[1]
    assert store in internal
    registry_port = int(registry["SCHEMA_REGISTRY_LISTENERS"].rsplit(":", 1)[1])
    url = urlsplit(worker["FLIGHTREC_SCHEMA_REGISTRY_URL"])
    assert (url.hostname, url.port) == ("schema-registry", registry_port)
    assert registry_port in _container_ports(services["schema-registry"])

    otlp = urlsplit(worker["FLIGHTREC_OTLP_ENDPOINT"])
    assert otlp.hostname == "jaeger"
    assert otlp.port in _container_ports(services["jaeger"])

    if "FLIGHTREC_BUREAU_URL" in worker:
        bureau = urlsplit(worker["FLIGHTREC_BUREAU_URL"])
        assert bureau.hostname in services
        command = services[bureau.hostname]["command"]
        assert int(command[command.index("--port") + 1]) == bureau.port
        assert bureau.hostname in worker["FLIGHTREC_HTTP_ALLOWED_HOSTS"].split(",")


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """service name -> the condition it waits for (a list form means service_started)."""
    raw = service.get("depends_on", {})
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def test_contracts_are_applied_before_the_worker_starts(compose: dict[str, Any]) -> None:
    # cp-schema-registry starts empty and the worker's codec refuses unregistered
    # subjects, so a one-shot `flightrec contracts apply` must finish first.
    services = _services(compose)
    contracts = services["contracts"]
    worker = services["worker"]
    assert contracts["build"] == worker["build"]  # same image: the same contracts
    dockerfile = (REPO_ROOT / "Dockerfile").read_text("utf-8")
    assert re.search(r'^ENTRYPOINT \["flightrec"\]$', dockerfile, re.MULTILINE)
    args = build_parser().parse_args(contracts["command"])
    assert (args.command, args.contracts_command, args.dry_run) == ("contracts", "apply", False)
    # One-shot: a restart policy would run it again and again.
    assert contracts.get("restart", "no") == "no"

    assert _depends_on(worker)["contracts"] == "service_completed_successfully"
    waits_for = _depends_on(contracts)
    for dependency in ("kafka", "schema-registry"):
        assert waits_for[dependency] == "service_healthy"
        assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"


def test_contracts_and_worker_use_the_same_kafka_and_registry(compose: dict[str, Any]) -> None:
    services = _services(compose)
    contracts_env = _env(services["contracts"])
    worker_env = _env(services["worker"])
    for variable in ("FLIGHTREC_KAFKA_BOOTSTRAP_SERVERS", "FLIGHTREC_SCHEMA_REGISTRY_URL"):
        assert contracts_env[variable] == worker_env[variable], variable
    # As the processes read them, including anything else that decides where and
    # under which subjects the contracts are registered (credentials, topic prefix).
    applied = Settings.from_env(contracts_env)
    used = Settings.from_env(worker_env)
    assert applied.kafka_client_config() == used.kafka_client_config()
    assert applied.schema_registry_config() == used.schema_registry_config()
    assert applied.topics == used.topics


def _field_for(variable: str) -> str:
    if variable == "FLIGHTREC_KAFKA_BOOTSTRAP_SERVERS":
        return "bootstrap_servers"
    if variable == "FLIGHTREC_TOPIC_PREFIX":
        return "topics"
    if variable in {
        "FLIGHTREC_KAFKA_PORT",
        "FLIGHTREC_KAFKA_CONTROLLER_PORT",
        "FLIGHTREC_KAFKA_VERSION",
    }:
        return variable.removeprefix("FLIGHTREC_").lower()
    if variable.startswith("FLIGHTREC_KAFKA_"):
        return "kafka_config"  # librdkafka passthrough
    return variable.removeprefix("FLIGHTREC_").lower()


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, tuple):
        return ",".join(value)
    return value


def _probe(value: str) -> str:
    """A value of the same kind that differs from ``value``."""
    return str(int(value) + 1) if value.lstrip("-").isdigit() else (value or "probe") + "-x"


def test_every_flightrec_variable_sets_its_settings_field(compose: dict[str, Any]) -> None:
    variables: dict[str, str] = {}
    for service in _services(compose).values():
        for key, value in _env(service).items():
            if key.startswith("FLIGHTREC_"):
                variables[key] = value
    assert "FLIGHTREC_KAFKA_BOOTSTRAP_SERVERS" in variables
    default = Settings.from_env({})
    for variable, value in variables.items():
        field = _field_for(variable)
        assert field in Settings.model_fields, f"{variable} matches no Settings field"
        if field == "kafka_config":
            prop = variable.removeprefix("FLIGHTREC_KAFKA_").lower().replace("_", ".")
            assert Settings.from_env({variable: value}).kafka_config[prop] == value
            continue
        # The file's value arrives in the field (as its type) ...
        loaded = getattr(Settings.from_env({variable: value}), field)
        if value:
            assert str(_plain(loaded)) == value or _plain(loaded) == type(_plain(loaded))(value)
        # ... and the variable really drives the field: another value changes it.
        probed = getattr(Settings.from_env({variable: _probe(value)}), field)
        assert _plain(probed) != _plain(getattr(default, field)), variable


def test_docker_compose_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI")
    has_compose = subprocess.run(
        [docker, "compose", "version"], capture_output=True, check=False, timeout=30
    )
    if has_compose.returncode != 0:
        pytest.skip("docker CLI without the compose plugin")
    done = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
