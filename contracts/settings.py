"""One frozen ``Settings`` object, read from ``FLIGHTREC_*`` environment variables.

It lives in ``contracts`` because every layer may import contracts and nothing
else; it is always passed explicitly, never read from a global.

Kafka client configuration passes through untouched: every variable
``FLIGHTREC_KAFKA_<KEY>`` becomes the librdkafka property ``<key>`` with ``_``
turned into ``.`` (``FLIGHTREC_KAFKA_SASL_MECHANISM=PLAIN`` ->
``sasl.mechanism=PLAIN``), so Confluent Cloud (SASL_SSL) works without code.

Secrets never appear in ``repr``, ``str``, dumps or logs of ``Settings``:

- A librdkafka property is secret by its name (``is_secret_kafka_property``:
  passwords, passphrases, client secrets, private keys and key stores, PEM
  material, keytabs, JAAS and OAUTHBEARER configs) or by its value (a URL
  carrying a password). Secret properties live in ``kafka_secrets`` as
  ``SecretStr``, whichever way the settings were built.
- The password of a URL's userinfo (``https://user:PWD@host``) and the value
  of a credential in its query string (``?api_key=``, ``&token=``,
  ``?password=``) are masked wherever a URL is shown (``redact_url``): ``schema_registry_url`` and the
  other endpoint fields keep their real value for the clients.

The real values reach only what needs them: ``kafka_client_config()``,
``producer_config()``, ``consumer_config()``, ``schema_registry_config()`` and
``to_env()`` (for child processes we start).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from flightrec.contracts.retention import DEFAULT_PROFILE, retention_profile

__all__ = [
    "DEVELOPMENT_PII_KEY",
    "PRODUCER_SAFE_DEFAULTS",
    "REDACTED",
    "Settings",
    "Topics",
    "is_secret_kafka_property",
    "redact_url",
]

# Producer defaults that keep data (librdkafka's own defaults can lose it).
PRODUCER_SAFE_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "delivery.timeout.ms": 120000,
    "client.dns.lookup": "use_all_dns_ips",
}

# The built-in PII key: public, so it protects nothing; only a local stack may
# use it (``flightrec.contracts.pii_keys.pii_keyring_for`` refuses it elsewhere).
DEVELOPMENT_PII_KEY = "flightrec-local-development-key"

# What a masked secret shows (the same as pydantic's ``SecretStr``).
REDACTED = "**********"

# Which librdkafka properties hold secrets, as a rule on the name rather than a
# list, so a property added by a later librdkafka (or a Java-style one) is
# covered without code. From librdkafka's CONFIGURATION.md:
# - any name containing these: sasl.password, ssl.key.password,
#   ssl.keystore.password, sasl.oauthbearer.client.secret (and its
#   ...client.credentials.client.secret alias),
#   sasl.oauthbearer.assertion.private.key.passphrase;
_SECRET_SUBSTRINGS = ("password", "passwd", "passphrase", "secret")
# - any name with one of these dot-separated words: private keys and key
#   stores (ssl.key.pem, ssl.key.location, ssl.keystore.*,
#   sasl.oauthbearer.assertion.private.key.pem), PEM material (ssl.*.pem:
#   certificates are public, but one rule for all PEM is simpler than a
#   wrong guess), Kerberos keytabs and JAAS configs (which embed passwords).
_SECRET_WORDS = frozenset({"key", "pem", "keystore", "keytab", "jaas"})
# - sasl.oauthbearer.config: free-form, and carries identity-provider
#   credentials for some methods (librdkafka marks it sensitive).
_SECRET_PROPERTIES = frozenset({"sasl.oauthbearer.config"})

# A URL's scheme and authority. The authority stops at the path, query,
# fragment, whitespace or a comma (comma-separated URL lists, as the registry
# client accepts); the userinfo is everything before its *last* ``@``, so an
# unencoded ``@`` in a password is still masked whole.
_URL_AUTHORITY = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<authority>[^/?#\s,]*)")

# A query parameter (``?name=value`` or ``&name=value``) whose name says it is
# a credential: API keys, tokens (OAuth, SAS signatures), passwords, secrets.
# Its value ends at the next parameter, fragment, whitespace or comma.
_QUERY_PARAMETER = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&#\s,?]+)=(?P<value>[^&#\s,]*)")
_SECRET_QUERY_NAMES = frozenset({"key", "code", "sig", "pwd", "pass", "auth", "authorization"})
_SECRET_QUERY_SUBSTRINGS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "access_key",
    "accesskey",
    "private",
    "credential",
    "signature",
)

_ENV_PREFIX = "FLIGHTREC_"
_KAFKA_PREFIX = "FLIGHTREC_KAFKA_"
# FLIGHTREC_KAFKA_* variables that are ours, not librdkafka passthrough.
_KAFKA_OWN = frozenset(
    {
        "FLIGHTREC_KAFKA_BOOTSTRAP_SERVERS",
        "FLIGHTREC_KAFKA_PORT",
        "FLIGHTREC_KAFKA_CONTROLLER_PORT",
        "FLIGHTREC_KAFKA_VERSION",
    }
)


def is_secret_kafka_property(name: str) -> bool:
    """Whether the librdkafka property ``name`` holds a secret (see the rule above)."""
    prop = name.lower()
    if prop in _SECRET_PROPERTIES:
        return True
    if any(part in prop for part in _SECRET_SUBSTRINGS):
        return True
    return not _SECRET_WORDS.isdisjoint(re.split(r"[._]", prop))


def _mask_authority(match: re.Match[str]) -> str:
    authority = match.group("authority")
    userinfo, at, hostport = authority.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not at or not colon:
        return match.group(0)  # no password; a bare user name is shown
    return f"{match.group('scheme')}{user}:{REDACTED}@{hostport}"


def _mask_query_secret(match: re.Match[str]) -> str:
    if not _is_secret_query_name(match.group("name")):
        return match.group(0)
    return f"{match.group('lead')}{match.group('name')}={REDACTED}"


def _is_secret_query_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_QUERY_NAMES or any(
        part in lowered for part in _SECRET_QUERY_SUBSTRINGS
    )


def redact_url(text: str) -> str:
    """``text`` with the credentials of every URL masked: the password of its
    userinfo and the value of a query parameter that holds a secret.

    ``https://user:PWD@host/x`` -> ``https://user:**********@host/x`` and
    ``https://host/v1?api_key=K&x=1`` -> ``https://host/v1?api_key=**********&x=1``;
    works on a single URL, a comma-separated list or any text that contains
    URLs (an error message). Text without credentials is returned unchanged.
    """
    if "@" in text:
        text = _URL_AUTHORITY.sub(_mask_authority, text)
    if "=" in text:
        text = _QUERY_PARAMETER.sub(_mask_query_secret, text)
    return text


def _redact(value: Any) -> Any:
    """``value`` with URL passwords masked in every string, containers walked."""
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, Mapping):
        return {key: _redact(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(_redact(item) for item in value)
    return value


class Topics(BaseModel):
    """Topic names; a prefix (``FLIGHTREC_TOPIC_PREFIX``) is prepended to all."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    applications: str = "loan.applications"
    applications_dlq: str = "loan.applications.dlq"
    decisions: str = "loan.decisions"
    cot: str = "agent.cot"
    # signed per-partition chain heads of agent.cot, see contracts.checkpoint
    checkpoints: str = "agent.cot.checkpoints"
    replays: str = "agent.replays"
    # internal: attempt numbers per trace (compacted), see agents.attempts
    attempts: str = "agent.attempts"
    schemas: str = "_schemas"

    prefix: str = ""

    def with_prefix(self, prefix: str) -> Topics:
        """The default names with ``prefix`` prepended (replaces any earlier prefix)."""
        base = Topics()
        names = {
            name: prefix + value for name, value in base.model_dump().items() if name != "prefix"
        }
        return Topics(prefix=prefix, **names)


class Settings(BaseModel):
    """All configuration of a flightrec process. Frozen; build with ``from_env``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Kafka. Passthrough librdkafka properties; secret ones (by the rule of
    # ``is_secret_kafka_property``) are moved to ``kafka_secrets`` on validation.
    bootstrap_servers: str = "127.0.0.1:19092"
    kafka_config: Mapping[str, str] = Field(default_factory=dict)
    kafka_secrets: Mapping[str, SecretStr] = Field(default_factory=dict)
    topics: Topics = Field(default_factory=Topics)
    cot_partitions: int = 6
    replication_factor: int = 1

    # Schema registry. Credentials either in the URL's userinfo (masked when
    # shown) or in ``schema_registry_basic_auth``; the registry client refuses both.
    schema_registry_url: str = "http://127.0.0.1:18081"
    schema_registry_basic_auth: SecretStr | None = None

    # Local stack
    stack_dir: Path = Path(".flightrec")
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_version: str = "4.1.1"
    registry_port: int = 18081
    bureau_port: int = 18090

    # Models: "policy" (offline, default) or an OpenAI-compatible endpoint.
    model: str = "policy"
    model_profile: str = "standard"
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    model_temperature: float = 0.0
    model_seed: int | None = 7
    model_timeout_s: float = 30.0
    model_max_retries: int = 3
    # Benchmark and testing knob, never set in production: every model call
    # first sleeps this long (``DelayedModel``), so a run's model latency can be
    # dialled in against an offline model (``flightrec bench runtime``).
    model_latency_ms: float = 0.0

    # Agents the worker hosts by default: names of installed agents
    # (entry-point group ``flightrec.agents``) or ``package.module:attribute``;
    # FLIGHTREC_AGENTS, comma-separated. Empty: every installed agent.
    agents: tuple[str, ...] = ("loan-underwriter",)

    # Tools
    bureau_url: str = "http://127.0.0.1:18090"
    http_allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    tool_timeout_s: float = 5.0

    # Recorder and privacy
    # PII keys (docs/design.md, "Privacy"): one key and its id, or a key-ring
    # file of several (``flightrec.contracts.pii_keys``), whose active key makes
    # new tokens and DLQ ciphertexts while the others still read old ones. The
    # default key is for the local stack only: other brokers refuse it.
    pii_hmac_key: SecretStr = SecretStr(DEVELOPMENT_PII_KEY)
    pii_key_id: str = "k1"
    pii_keyring_file: Path | None = None
    recorder_queue_size: int = 10000
    # How often a recorder that signs writes a checkpoint of the CoT partitions'
    # chain heads it wrote (and once more on close), when any moved since the
    # last one (docs/design.md, "Checkpoints of the log"); 0: no checkpoints.
    checkpoint_interval_s: float = Field(default=30.0, ge=0)
    # Signing (docs/design.md, "Signed and anchored records"): the worker signs
    # each attempt's decision and terminal event with an Ed25519 key that is no
    # Kafka credential, as PEM text or a PEM file (PKCS#8, unencrypted). With
    # neither, a worker whose brokers are all on this machine uses (and first
    # creates) a development key under ``stack_dir``; any other refuses to start.
    signing_key: SecretStr | None = None
    signing_key_file: Path | None = None
    # Public keys verifiers trust besides the configured key's own: PEM files or
    # directories of ``*.pem``; FLIGHTREC_TRUSTED_KEYS, comma-separated. Keep a
    # rotated-out key here for as long as its records are kept.
    trusted_keys: tuple[str, ...] = ()

    # Worker. Runs in flight at once per worker process (all its agents): a
    # run waits on the model for most of its life, so hundreds fit.
    max_in_flight: int = Field(default=256, ge=1)
    # Records of one partition buffered or in flight before the worker pauses
    # fetching it (resumed at half): what bounds memory whatever the backlog.
    partition_buffer: int = Field(default=512, ge=1)
    # How long a revoked partition's runs get to settle before they are fenced
    # and cancelled: well inside the group's rebalance timeout.
    revoke_timeout_s: float = Field(default=10.0, gt=0)
    # How often `flightrec worker` logs its status line (0: never).
    worker_status_interval_s: float = Field(default=30.0, ge=0)
    # Replays verified or re-evaluated at once (replay's own concurrency).
    worker_concurrency: int = 4
    app_id: str = "flightrec-worker"
    # Static group membership: a worker restarted under the same id (a pod
    # name, a systemd instance) takes its partitions back at once instead of
    # waiting out the session timeout of the member that died. Unique per
    # running worker; unset means dynamic membership.
    worker_instance_id: str | None = None
    worker_session_timeout_s: float = 45.0
    # How far back a worker taking over a partition reads the attempt ledger:
    # an input can only be re-delivered while uncommitted, so a day is ample.
    # The ledger topic keeps entries for a week (at least twice this).
    attempts_lookback_s: float = 86400.0
    # How long the flight-record topics keep their records at least
    # (contracts.retention: local, eu-ai-act, financial-services). Topics are
    # created with it and `contracts apply` checks existing ones against it.
    retention_profile: str = DEFAULT_PROFILE

    # Observability
    otlp_endpoint: str | None = None
    capture_message_content: bool = False

    @field_validator("retention_profile")
    @classmethod
    def _known_retention_profile(cls, name: str) -> str:
        # A misspelt profile fails at start-up, not when a topic is created.
        return retention_profile(name).name

    @model_validator(mode="before")
    @classmethod
    def _move_kafka_secrets(cls, data: Any) -> Any:
        """Secret passthrough properties go to ``kafka_secrets``, however built.

        Done at validation rather than in ``from_env`` so ``Settings(kafka_config=...)``
        and ``from_env(kafka_config=...)`` overrides cannot put a secret in the
        plain mapping, which is shown in ``repr`` and logs.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("kafka_config"), Mapping):
            return data
        plain: dict[str, Any] = {}
        secrets: dict[str, Any] = dict(data.get("kafka_secrets") or {})
        for key, value in data["kafka_config"].items():
            # A value with a URL password is secret whatever its property's name
            # (e.g. sasl.oauthbearer.token.endpoint.url=https://id:secret@idp).
            url_secret = isinstance(value, str) and redact_url(value) != value
            if is_secret_kafka_property(str(key)) or url_secret:
                secrets[key] = value
            else:
                plain[key] = value
        return {**data, "kafka_config": plain, "kafka_secrets": secrets}

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # repr() and str() (and so %s / %r in logs) are built from these pairs;
        # SecretStr fields already mask themselves, URLs need their password masked.
        for name, value in super().__repr_args__():
            yield name, _redact(value)

    @model_serializer(mode="wrap")
    def _redact_dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Dumps are for showing (a dump gets logged); the real values come from
        # the *_config() methods and to_env(). SecretStr already dumps masked.
        return _redact(handler(self))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``FLIGHTREC_*`` variables (see README's configuration table)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        # All passthrough goes here; validation moves the secret ones out.
        kafka_config: dict[str, str] = {}
        simple = {
            name: field
            for name, field in cls.model_fields.items()
            if name not in {"kafka_config", "kafka_secrets", "topics"}
        }
        for key, raw in env.items():
            if not key.startswith(_ENV_PREFIX):
                continue
            if key.startswith(_KAFKA_PREFIX) and key not in _KAFKA_OWN:
                prop = key[len(_KAFKA_PREFIX) :].lower().replace("_", ".")
                kafka_config[prop] = raw
                continue
            name = key[len(_ENV_PREFIX) :].lower()
            if name in {"http_allowed_hosts", "agents", "trusted_keys"}:
                values[name] = tuple(h.strip() for h in raw.split(",") if h.strip())
            elif name == "capture_message_content":
                values[name] = raw.strip().lower() in {"1", "true", "yes", "on"}
            elif name in simple:
                values[name] = raw if raw != "" else None
        # Our own names for the Kafka variables above.
        if "FLIGHTREC_KAFKA_BOOTSTRAP_SERVERS" in env:
            values["bootstrap_servers"] = env["FLIGHTREC_KAFKA_BOOTSTRAP_SERVERS"]
        for own, field in (
            ("FLIGHTREC_KAFKA_PORT", "kafka_port"),
            ("FLIGHTREC_KAFKA_CONTROLLER_PORT", "kafka_controller_port"),
            ("FLIGHTREC_KAFKA_VERSION", "kafka_version"),
        ):
            if own in env:
                values[field] = env[own]
        if "kafka_port" in values and "bootstrap_servers" not in values:
            values["bootstrap_servers"] = f"127.0.0.1:{values['kafka_port']}"
        if "registry_port" in values and "schema_registry_url" not in values:
            values["schema_registry_url"] = f"http://127.0.0.1:{values['registry_port']}"
        if "bureau_port" in values and "bureau_url" not in values:
            values["bureau_url"] = f"http://127.0.0.1:{values['bureau_port']}"
        values["topics"] = Topics().with_prefix(env.get("FLIGHTREC_TOPIC_PREFIX", ""))
        values["kafka_config"] = kafka_config
        values.pop("topic_prefix", None)
        values.update(overrides)
        return cls.model_validate(values)

    def to_env(self) -> dict[str, str]:
        """``FLIGHTREC_*`` variables that rebuild these settings in a child process
        (secrets included: only for passing to processes we start)."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            if name in {"kafka_config", "kafka_secrets", "topics"}:
                continue
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[_ENV_PREFIX + name.upper()] = str(value)
        env["FLIGHTREC_KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap_servers
        env.pop("FLIGHTREC_BOOTSTRAP_SERVERS", None)
        for key, raw in self.kafka_config.items():
            env[_KAFKA_PREFIX + key.upper().replace(".", "_")] = raw
        for key, secret in self.kafka_secrets.items():
            env[_KAFKA_PREFIX + key.upper().replace(".", "_")] = secret.get_secret_value()
        env["FLIGHTREC_TOPIC_PREFIX"] = self.topics.prefix
        return env

    def brokers_are_local(self) -> bool:
        """Whether every bootstrap server is on this machine (loopback or
        ``localhost``), decided from the configuration alone, before any
        connection: what lets a worker fall back to development defaults.

        The broker lists librdkafka is given count, not only ``bootstrap_servers``:
        a passthrough ``bootstrap.servers`` or its alias ``metadata.broker.list``
        decides where the clients connect."""
        config = self.kafka_client_config()
        lists = [config.get(name) for name in _BROKER_LIST_PROPERTIES]
        hosts = [
            _host_of(server)
            for servers in lists
            if isinstance(servers, str)
            for server in servers.split(",")
            if server.strip()
        ]
        return bool(hosts) and all(_is_loopback(host) for host in hosts)

    # -- client configuration -------------------------------------------------

    def kafka_client_config(self) -> dict[str, Any]:
        """Common librdkafka configuration: bootstrap, passthrough, secrets revealed."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        config.update(self.kafka_config)
        config.update({k: v.get_secret_value() for k, v in self.kafka_secrets.items()})
        return config

    def producer_config(self, **extra: Any) -> dict[str, Any]:
        """Producer configuration with the data-keeping defaults; passthrough wins."""
        config = dict(PRODUCER_SAFE_DEFAULTS)
        config.update(self.kafka_client_config())
        config.update(extra)
        return config

    def consumer_config(self, group_id: str | None = None, **extra: Any) -> dict[str, Any]:
        """Consumer configuration; manual commits, read from the start by default."""
        config: dict[str, Any] = {
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "client.dns.lookup": "use_all_dns_ips",
        }
        config.update(self.kafka_client_config())
        config["group.id"] = group_id or f"{self.app_id}-reader"
        config.update(extra)
        return config

    def schema_registry_config(self) -> dict[str, Any]:
        """Configuration for confluent-kafka's ``SchemaRegistryClient``."""
        config: dict[str, Any] = {"url": self.schema_registry_url}
        if self.schema_registry_basic_auth is not None:
            config["basic.auth.user.info"] = self.schema_registry_basic_auth.get_secret_value()
        return config


# librdkafka's names for the initial broker list (one property, two names).
_BROKER_LIST_PROPERTIES = ("bootstrap.servers", "metadata.broker.list")


def _host_of(server: str) -> str:
    """The host of a bootstrap server ``[PROTOCOL://]host[:port]`` (IPv6 in brackets)."""
    address = server.strip().rpartition("://")[2]
    if address.startswith("["):
        return address[1:].partition("]")[0]
    if address.count(":") > 1:  # a bare IPv6 address without a port
        return address
    return address.partition(":")[0]


def _is_loopback(host: str) -> bool:
    if host.lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere
