"""The TOML configuration, validated at start-up into typed models.

Every error names the file, the key (or the CSV line) and what is wrong. Secrets are given
as `{ env = "NAME" }` or `{ file = "path" }` tables (or a literal, with a warning) and are held
as `SecretStr`, so they never show in a repr or a log line.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import ipaddress
import logging
import os
import re
import stat
import tomllib
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from hashwatt.errors import ConfigError
from hashwatt.tables import did_you_mean, read_table
from hashwatt.tariff import WEEKDAYS, TariffConfig
from hashwatt.tomlplace import TomlPlaces

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = "/var/lib/hashwatt"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                      r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def _address(value: str) -> str:
    """A host only: an IP address or a hostname; ports and URLs are never pollable here."""
    value = value.strip()
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    bracketed = re.fullmatch(r"\[([0-9A-Fa-f:.%\w]+)\](?::(\d+))?", value)
    if bracketed:  # an IPv6 address as URLs write it: [fd00::13], [fd00::13]:4028
        host, port = bracketed.groups()
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{value!r} is not a valid IPv6 address") from None
        if port:
            raise ValueError(f"{value!r}: give the host only, without :{port} (e.g. {host})")
        return host
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/:]*)", value)
    if scheme:
        raise ValueError(f"{value!r}: give the host only, without {scheme.group(1)}:// "
                         f"(e.g. {scheme.group(2) or 'the address'})")
    host, sep, port = value.rpartition(":")
    if sep and port.isdigit() and host.count(":") == 0:
        raise ValueError(f"{value!r}: give the host only, without :{port} (the ports are the "
                         f"firmware's or their own keys)")
    if re.fullmatch(r"[0-9.]+", value):
        zeros = " (leading zeros are not allowed)" if re.search(r"(^|\.)0\d", value) else ""
        raise ValueError(f"{value!r} is not a valid IPv4 address{zeros}")
    if value.count(":") >= 2:
        raise ValueError(f"{value!r} is not a valid IPv6 address")
    if not HOSTNAME.match(value):
        raise ValueError(f"{value!r} is not a valid IP address or hostname")
    return value


def address_key(address: str) -> str:
    """An address as two inventory rows compare it: IPs in canonical form (fd00:0::1 is
    fd00::1), hostnames in lower case."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address.lower().rstrip(".")


def _yes_no(value: Any) -> Any:
    """A spreadsheet's tick in a yes/no column: `x`, `✓` mean yes, `-` no."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("x", "\u2713", "\u2714", "\u2611"):
            return True
        if text in ("-", "\u2717", "\u2610"):
            return False
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {value!r} (use an IANA name like Europe/Berlin)") from None
    return value


Id = Annotated[str, Field(pattern=ID_PATTERN)]
Address = Annotated[str, AfterValidator(_address)]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(Strict):
    """Where a secret comes from: an environment variable or a file."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env = \"NAME\" or file = \"path\"")
        return self


SecretSpec = SecretRef | SecretStr


class SiteConfig(Strict):
    """The site: its name (a topic segment and tag), timezone and currency."""

    name: Id
    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"


class MqttLogin(Strict):
    """One role's MQTT identity (the broker's ACL tells collector and bridge users apart)."""

    username: str
    password: SecretSpec | None = None


Role = Literal["collector", "bridge"]


class MqttConfig(Strict):
    """The MQTT broker; `[mqtt.collector]` and `[mqtt.bridge]` give each role its own login
    (the ACL lets a collector write its site's topics and the bridge read them), and
    `username`/`password` serve any role without a table of its own."""

    host: Address = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretSpec | None = None
    collector: MqttLogin | None = None
    bridge: MqttLogin | None = None
    topic_prefix: Id = "hashwatt"
    keepalive_s: int = Field(30, ge=5, le=3600)
    tls: bool = False
    ca_file: Path | None = None


class SinkConfig(Strict):
    """`[influxdb]`, where the bridge writes: `api` names the sink type, whose own model
    (beside its code, `exporters/sinks/<type>.py`, a subclass of this) checks the rest of
    the table. Here only what every sink has; the application hands the sinks' models to
    load_config (`sinks=`), so the vocabulary never imports the exporters."""

    model_config = ConfigDict(extra="allow", frozen=True)

    api: Annotated[str, Field(pattern=ID_PATTERN)] = "v1"
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/.*)?$")] = "http://127.0.0.1:8086"
    timeout_s: float = Field(10.0, gt=0, le=300)


SinkModels = Mapping[str, type[SinkConfig]]


class CollectorConfig(Strict):
    """How the collector polls."""

    id: Id = "collector-1"
    interval_s: float = Field(30.0, ge=1, le=3600)
    concurrency: int = Field(200, ge=1, le=10000)
    deadline_s: float = Field(10.0, gt=0, le=300)
    reidentify_after: int = Field(3, ge=1, le=1000)
    # one RPC exchange per poll for firmware whose RPC carries everything; pyasic otherwise
    fast_paths: bool = True
    # readings wait here while the broker is away (relative to the config file)
    spool_path: Path = Path("hashwatt-spool.db")
    spool_max_messages: int = Field(1_000_000, ge=100)
    # while the spool's disk refuses writes (full, read-only), readings wait in memory
    spool_memory_max_messages: int = Field(20_000, ge=100)
    # drills only: keep a copy of every spooled message (the `audit` table) to prove
    # exactly-once storage against
    spool_audit: bool = False
    # a reading without a stored receipt while readings sent this much later have one was
    # lost on the way (e.g. the broker had no subscriber then): it is sent again
    resend_after_s: float = Field(60.0, ge=1)

    @model_validator(mode="after")
    def _deadline_fits(self) -> CollectorConfig:
        if self.deadline_s > self.interval_s:
            raise ValueError("deadline_s must not be longer than interval_s")
        return self


class BridgeConfig(Strict):
    """How the exporter bridge batches and where it sets bad messages aside."""

    client_id: Id = "hashwatt-bridge"
    # several bridges share the load through an MQTT v5 shared subscription of this group
    shared_group: Id | None = None
    batch_size: int = Field(1000, ge=1, le=100_000)
    flush_interval_s: float = Field(1.0, gt=0, le=60)
    dead_letter_file: Path = Path("hashwatt-deadletters.jsonl")
    # the dead-letter file is rotated at this size, keeping this many old files
    dead_letter_max_bytes: int = Field(10 * 1024 * 1024, ge=4096)
    dead_letter_keep: int = Field(3, ge=0, le=100)
    # QoS 0 messages (outside the contract's QoS 1) waiting at most; more are dropped
    max_qos0_queued: int = Field(10_000, ge=1)
    max_payload_bytes: int = Field(256 * 1024, ge=1024)
    max_clock_skew_s: float = Field(7 * 86400, gt=0)
    stats_interval_s: float = Field(10.0, gt=0)
    rollup_interval_s: float = Field(300.0, ge=0)  # 0 turns the in-service ledger rollup off
    rollup_hours: int = Field(3, ge=1, le=48)  # closed hours rewritten each time (late data)


class RigConfig(Strict):
    """One rig of the inventory."""

    id: Id
    address: Address
    rack: str = ""
    slot: int | None = Field(None, ge=0)
    customer: str = ""
    model: str | None = None
    pdu: Id | None = None
    outlet: int | None = Field(None, ge=1)
    # the daisy-chained unit the outlet is on, as the PDU's readings tag it (Sentry3 tower /
    # Sentry4 unit 1, 2, ..., Eaton strapping index, Raritan pduId); unset = the master unit
    pdu_unit: Annotated[str, Field(pattern=r"^[0-9]{1,3}$")] | None = None
    # a rig waiting for repair: its alerts are muted and it is left out of availability
    maintenance: Annotated[bool, BeforeValidator(_yes_no)] = False
    # what `hashwatt discover` found (informational; `mac` tells a moved rig from a new one)
    make: str | None = None
    firmware: str | None = None
    mac: str | None = None
    serial: str | None = None
    # logins: a [[credentials]] group by name, or this rig's own (secrets: env/file)
    credentials: Id | None = None
    web_user: str | None = None
    web_password: SecretSpec | None = None
    rpc_user: str | None = None
    rpc_password: SecretSpec | None = None

    @model_validator(mode="after")
    def _outlet_pair(self) -> RigConfig:
        if (self.pdu is None) != (self.outlet is None):
            raise ValueError("pdu and outlet go together: give both or neither")
        if self.pdu_unit is not None and self.pdu is None:
            raise ValueError("pdu_unit needs pdu and outlet: it names the unit of a PDU's "
                             "daisy chain the outlet is on")
        return self


class CredentialsConfig(Strict):
    """Logins shared by a group of rigs: the rigs that name it, or every rig of its models."""

    name: Id
    models: list[str] = []  # model names as the inventory or pyasic gives them
    web_user: str | None = None
    web_password: SecretSpec | None = None
    rpc_user: str | None = None  # Whatsminer API v3 account
    rpc_password: SecretSpec | None = None


class PduConfig(Strict):
    """One PDU or power meter read over SNMP."""

    id: Id
    address: Address
    port: int = Field(161, ge=1, le=65535)
    rack: str = ""
    profile: str | None = None  # detected from sysObjectID when not given
    snmp_version: Literal["1", "2c", "3"] = "2c"
    community: SecretSpec | None = None
    v3_user: str | None = None
    v3_auth_key: SecretSpec | None = None
    v3_priv_key: SecretSpec | None = None
    v3_auth_protocol: Literal["MD5", "SHA", "SHA224", "SHA256"] = "SHA"
    v3_priv_protocol: Literal["DES", "AES", "AES256"] = "AES"
    v3_context: str = ""
    timeout_s: float | None = Field(None, gt=0, le=60)
    retries: int | None = Field(None, ge=0, le=10)
    max_repetitions: int | None = Field(None, ge=1, le=200)

    @model_validator(mode="after")
    def _v3_user(self) -> PduConfig:
        if self.snmp_version == "3" and not self.v3_user:
            raise ValueError("snmp_version = \"3\" needs v3_user")
        if self.v3_priv_key is not None and self.v3_auth_key is None:
            raise ValueError("v3_priv_key needs v3_auth_key (SNMPv3 has no privNoAuth)")
        return self


class MeterConfig(Strict):
    """One Modbus TCP power meter (directly, or behind a Modbus TCP gateway)."""

    id: Id
    address: Address
    port: int = Field(502, ge=1, le=65535)
    unit_id: int = Field(1, ge=0, le=255)
    map: str  # register map name, e.g. eastron_sdm630, schneider_pm5xxx
    rack: str = ""
    timeout_s: float = Field(2.0, gt=0, le=60)
    # the prefix the meter is set to show energy with: "M" when an SDM630MCT shows MWh
    energy_prefix: Literal["k", "M"] = "k"
    # the order of the words of a 32/64-bit value when a gateway swaps them; unset = the map's
    # (the vendor's table: high word first on Eastron and Schneider)
    word_order: Literal["big", "little"] | None = None


Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6)]


class PriceConfig(Strict):
    """What a customer pays per kWh: a fixed price, or the site tariff plus a markup."""

    kind: Literal["fixed", "tariff"]
    per_kwh: Money | None = None  # kind = "fixed": in the customer's currency
    markup_pct: Annotated[Decimal, Field(ge=-100, le=1000, decimal_places=4)] = Decimal(0)

    @model_validator(mode="after")
    def _fields(self) -> PriceConfig:
        if self.kind == "fixed" and self.per_kwh is None:
            raise ValueError('kind = "fixed" needs per_kwh')
        if self.kind == "tariff" and self.per_kwh is not None:
            raise ValueError('kind = "tariff" takes markup_pct, not per_kwh')
        return self


class FeesConfig(Strict):
    """Fixed monthly fees: per rig (pro rata for the time the rig was the customer's) and
    per kW of contracted capacity."""

    per_rig_month: Money = Decimal(0)
    per_kw_month: Money = Decimal(0)
    contracted_kw: Annotated[Decimal, Field(ge=0, decimal_places=3)] = Decimal(0)


class CustomerAccess(Strict):
    """The customer's own read-only view: an InfluxDB database and login, a Grafana org."""

    database: Id | None = None  # default hashwatt_c_<id>
    username: Id | None = None  # default customer_<id>
    password: SecretSpec | None = None  # the InfluxDB read login's (Grafana's datasource)
    grafana_password: SecretSpec | None = None  # the customer's own Grafana login


class CustomerConfig(Strict):
    """A hosting customer and its contract."""

    id: Id
    name: str = Field(min_length=1, max_length=200)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    price: PriceConfig
    fees: FeesConfig = FeesConfig()
    availability_target_pct: Annotated[Decimal, Field(ge=0, le=100)] = Decimal(0)
    billing_contact: str = ""
    access: CustomerAccess = CustomerAccess()
    # the contract's first and last local day: the capacity fee is pro rata for the part of
    # a month the contract covers (a contract starting on the 15th pays from its midnight)
    contract_start: _dt.date | None = None
    contract_end: _dt.date | None = None

    @model_validator(mode="after")
    def _contract(self) -> CustomerConfig:
        if (self.contract_start is not None and self.contract_end is not None
                and self.contract_end < self.contract_start):
            raise ValueError("contract_end is before contract_start")
        return self

    @property
    def database(self) -> str:
        """The customer's own InfluxDB database (v1) or bucket (v2)."""
        return self.access.database or f"hashwatt_c_{self.id}"

    @property
    def username(self) -> str:
        """The customer's read-only InfluxDB login."""
        return self.access.username or f"customer_{self.id}"

    @property
    def has_view(self) -> bool:
        """The customer has a view of its own (its read login's password is configured)."""
        return self.access.password is not None


class InventoryConfig(Strict):
    """More rigs, PDUs and meters from CSV files (paths relative to the config file)."""

    csv: Path | None = None
    pdus_csv: Path | None = None
    meters_csv: Path | None = None


class PoolsConfig(Strict):
    """Where the site's rigs may mine: pool URL patterns and a worker prefix per customer.

    `allowed` holds shell-style patterns matched against the active pool's URL, case
    insensitive (`stratum+tcp://*.braiins.com:*`); empty means any URL. `workers` maps a
    customer to the worker-name prefixes its rigs must use (`"*"` for every other customer).
    """

    allowed: list[Annotated[str, Field(min_length=1)]] = []
    workers: dict[str, list[Annotated[str, Field(min_length=1)]]] = {}
    check_interval_s: float = Field(300.0, ge=10, le=86400)  # pools change rarely


class Config(Strict):
    """The whole configuration file."""

    site: SiteConfig
    mqtt: MqttConfig = MqttConfig()
    influxdb: SinkConfig | None = None
    collector: CollectorConfig = CollectorConfig()
    bridge: BridgeConfig = BridgeConfig()
    inventory: InventoryConfig = InventoryConfig()
    rigs: list[RigConfig] = []
    credentials: list[CredentialsConfig] = []
    pdus: list[PduConfig] = []
    meters: list[MeterConfig] = []
    tariff: TariffConfig | None = None
    pools: PoolsConfig = PoolsConfig()
    customers: list[CustomerConfig] = []
    pdu_profiles_dir: Path | None = None
    # where the spool and dead letters live (relative: to the config file); by default
    # systemd's $STATE_DIRECTORY (StateDirectory=), else /var/lib/hashwatt
    state_dir: Path | None = None
    source: Path = Field(Path("."), exclude=True)

    def mqtt_login(self, role: Role) -> tuple[str | None, str | None]:
        """The (username, password) a role logs in with: its own table, else [mqtt]'s."""
        login = getattr(self.mqtt, role)
        if login is not None:
            return login.username, self.secret(login.password)
        return self.mqtt.username, self.secret(self.mqtt.password)

    def state_path(self, path: Path) -> Path:
        """A state file's location: absolute as given, relative inside the state directory."""
        return path if path.is_absolute() else self.state_directory() / path

    def state_directory(self) -> Path:
        """state_dir (relative to the config file), $STATE_DIRECTORY, or /var/lib/hashwatt."""
        if self.state_dir is not None:
            base = self.source.parent
            return self.state_dir if self.state_dir.is_absolute() else base / self.state_dir
        # systemd sets STATE_DIRECTORY for StateDirectory= (colon-separated when several)
        from_systemd = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        return Path(from_systemd or DEFAULT_STATE_DIR)

    def secret(self, spec: SecretSpec | None) -> str | None:
        """The plain value of a resolved secret (resolution happened at load)."""
        if spec is None:
            return None
        assert isinstance(spec, SecretStr), "secrets are resolved by load_config"
        return spec.get_secret_value()


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in _key_path(loc):
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _key_path(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The loc without pydantic's union and validator labels."""
    return tuple(part for part in loc if isinstance(part, int) or part not in (
        "SecretRef", "SecretStr", "function-after", "str"))


def _model_at(loc: tuple[int | str, ...],
              root: type[BaseModel] | None = None) -> type[BaseModel] | None:
    """The config model a (key path) loc lands in, for a "did you mean"."""
    current: Any = root or Config
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = current.model_fields.get(part) or next(
            (f for f in current.model_fields.values() if f.alias == part), None)
        if info is None:
            return None
        current = _inner_model(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _known_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items() if name != "source"]


def _message(err: Any, root: type[BaseModel] | None = None) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        loc = _key_path(err["loc"])
        model = _model_at(loc[:-1], root) if loc else None
        hint = did_you_mean(str(loc[-1]), _known_keys(model)) if model else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "string_pattern_mismatch" and err["ctx"]["pattern"] == ID_PATTERN:
        return (f"{err['input']!r} is not a valid id: letters, digits, '.', '_' and '-' "
                "(no spaces), starting with a letter or digit, at most 64")
    if kind == "string_pattern_mismatch":
        return f"{err['input']!r} has the wrong form (expected {err['ctx']['pattern']})"
    if kind == "bool_parsing":
        return f"{err['input']!r} is neither yes nor no"
    if kind in ("int_parsing", "int_from_float"):
        return f"{err['input']!r} is not a whole number"
    return str(msg).removeprefix("Value error, ")


def format_problems(origin: str, exc: ValidationError, prefix: str = "",
                    places: TomlPlaces | None = None,
                    column: Callable[[str], str] = str, *, under: tuple[str, ...] = (),
                    root: type[BaseModel] | None = None) -> list[str]:
    """One line per validation error: origin (with :line when known), dotted key (as
    `column` names it), message. A model validated on its own (`root`, e.g. a sink's) names
    its keys `under` its table."""
    seen: set[str] = set()
    lines = []
    for err in exc.errors():
        loc = (*under, *err["loc"])
        where = column(_where(loc))
        if where in seen:  # a union gives one error per alternative: report the first
            continue
        seen.add(where)
        line = places.line(_key_path(loc)) if places is not None else None
        at = f"{origin}:{line}" if line else origin
        lines.append(f"{at}: {prefix}{where}: {_message(err, root)}")
    return lines


def sink_section(origin: str, section: SinkConfig, sinks: SinkModels,
                 places: TomlPlaces | None = None) -> tuple[SinkConfig | None, list[str]]:
    """[influxdb] checked by the model of the sink its `api` names: (the section, []) or
    (None, one line per problem)."""
    model = sinks.get(section.api)
    if model is None:
        line = places.line(("influxdb", "api")) if places is not None else None
        return None, [f"{origin}{f':{line}' if line else ''}: influxdb.api: unknown sink type "
                      f"{section.api!r} (known: {', '.join(sorted(sinks))})"]
    if isinstance(section, model):
        return section, []
    try:
        return model.model_validate(section.model_dump()), []
    except ValidationError as exc:
        return None, format_problems(origin, exc, places=places, under=("influxdb",),
                                     root=model)


def secret_keys(model: type[BaseModel]) -> list[str]:
    """The keys of a model that hold secrets (typed SecretSpec)."""
    return [name for name, f in model.model_fields.items() if _holds(f.annotation, SecretStr)]


def _holds(annotation: Any, kind: type) -> bool:
    return annotation is kind or any(_holds(a, kind) for a in getattr(annotation, "__args__", ()))


def _read_text(path: Path, what: str = "config") -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a folder, not a {what} file"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text: save it as UTF-8"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None


def _parse_toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


def _read_toml(path: Path) -> dict[str, Any]:
    return _parse_toml(path, _read_text(path))


PDU_SECRETS = ("community", "v3_auth_key", "v3_priv_key")
RIG_SECRETS = ("web_password", "rpc_password")


ModelT = TypeVar("ModelT", bound=BaseModel)


def load_data_file(path: Path, model: type[ModelT]) -> ModelT:
    """A TOML data file (PDU profile, register map) validated into model, named after the
    file; errors name the file and the key."""
    raw = _read_toml(path)
    try:
        return model.model_validate({**raw, "name": path.stem})
    except ValidationError as exc:
        raise ConfigError(format_problems(str(path), exc)) from None


def _secret_cell(value: str) -> Any:
    """A secret in a CSV cell: `env:NAME`, `file:path`, or the literal value."""
    kind, sep, rest = value.partition(":")
    if sep and kind in ("env", "file") and rest:
        return {kind: rest}
    return value


def read_csv_models(path: Path, model: type[ModelT],
                    what: str = "inventory") -> tuple[list[tuple[int, ModelT]], list[str]]:
    """Rows of a CSV file validated into model, with their line numbers, and every problem
    (file:line: column: what is wrong); unknown columns are warned about and ignored."""
    secrets = frozenset((*PDU_SECRETS, *RIG_SECRETS))
    table = read_table(path, set(model.model_fields) - {"source"}, what=what, raw=secrets)
    for warning in table.warnings:
        log.warning("%s", warning)
    items: list[tuple[int, ModelT]] = []
    problems = list(table.problems)
    for line, row in table.rows:
        values: dict[str, Any] = {k: _secret_cell(v) if k in secrets else v
                                  for k, v in row.items()}
        try:
            items.append((line, model.model_validate(values)))
        except ValidationError as exc:
            problems += format_problems(f"{path}:{line}", exc, column=table.column)
    return items, problems


def _check_unique(origin: str, rigs: list[tuple[str, RigConfig]]) -> list[str]:
    """Ids (case-insensitive: `R1` beside `r1` is the same rig typed twice), addresses (as
    hosts compare: fd00:0::1 is fd00::1) and MACs each name one rig."""
    problems: list[str] = []
    seen: dict[str, dict[str, tuple[str, str]]] = {"id": {}, "address": {}, "MAC": {}}
    for where, rig in rigs:
        for key, value, norm in (("id", rig.id, rig.id.lower()),
                                 ("address", rig.address, address_key(rig.address)),
                                 ("MAC", rig.mac, normalise_mac(rig.mac))):
            if not value:
                continue
            if norm not in seen[key]:
                seen[key][norm] = (value, where)
                continue
            first, at = seen[key][norm]
            column = key.lower()
            if first == value:
                problems.append(f"{where}: {column}: duplicate rig {key} {value!r} "
                                f"(first at {at})")
            elif key == "id":
                problems.append(f"{where}: id: rig id {value!r} differs from {first!r} "
                                f"(at {at}) only in case: the same rig twice?")
            else:
                problems.append(f"{where}: {column}: duplicate rig {key} {value!r} (the same "
                                f"as {first!r} at {at})")
    return problems


def normalise_mac(mac: str | None) -> str:
    """AA:BB:CC:DD:EE:FF from the ways firmware and spreadsheets write a MAC (dashes, dots,
    no separators, lower case); anything else as given, upper case."""
    text = (mac or "").strip().upper()
    digits = re.sub(r"[^0-9A-F]", "", text)
    if len(digits) == 12 and re.fullmatch(r"[0-9A-F]{12}|([0-9A-F]{2}[:\-.]?){5}[0-9A-F]{2}|"
                                          r"([0-9A-F]{4}\.){2}[0-9A-F]{4}", text):
        return ":".join(digits[i:i + 2] for i in range(0, 12, 2))
    return text


Device = PduConfig | MeterConfig


def _check_outlets(devices: list[tuple[str, Device]],
                   rigs: list[tuple[str, RigConfig]]) -> list[str]:
    pdus = {d.id for _, d in devices if isinstance(d, PduConfig)}
    problems: list[str] = []
    seen: dict[str, str] = {}
    for where, device in devices:
        if device.id in seen:
            problems.append(f"{where}: id: duplicate PDU/meter id {device.id!r} "
                            f"(first at {seen[device.id]})")
        seen.setdefault(device.id, where)
    taken: dict[tuple[str, str, int | None], str] = {}
    for where, rig in rigs:
        if rig.pdu is None:
            continue
        if rig.pdu not in pdus:
            problems.append(f"{where}: pdu: no PDU {rig.pdu!r} in [[pdus]]"
                            f"{did_you_mean(rig.pdu, pdus, cutoff=0.8)}")
        key = (rig.pdu, rig.pdu_unit or "", rig.outlet)
        if key in taken:
            unit = f" unit {rig.pdu_unit}" if rig.pdu_unit else ""
            problems.append(f"{where}: outlet: {rig.pdu}{unit} outlet {rig.outlet} is already "
                            f"mapped to {taken[key]}")
        taken[key] = rig.id
    return problems


def _window_cells(w: Any) -> set[tuple[int, str]]:
    """(weekday, quarter hour) a window covers; a window across midnight (end before start)
    covers the day after each of its weekdays until its end."""
    quarters = [f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 15, 30, 45)]
    cells = set()
    for day in (list(WEEKDAYS).index(d) for d in w.weekdays):
        for q in quarters:
            if w.start < w.end and w.start <= q < w.end:
                cells.add((day, q))
            elif w.start > w.end:
                if q >= w.start:
                    cells.add((day, q))
                if q < w.end:
                    cells.add(((day + 1) % 7, q))
    return cells


def _windows_overlap(a: Any, b: Any) -> list[str]:
    """The weekdays two windows share time on (none when they are disjoint)."""
    if not set(a.months) & set(b.months):
        return []
    shared = {day for day, _ in _window_cells(a) & _window_cells(b)}
    return [WEEKDAYS[d] for d in sorted(shared)]


def _check_tariff(origin: str, places: TomlPlaces, tariff: TariffConfig | None) -> list[str]:
    """Overlapping time-of-use windows: the first listed would win without a word."""
    problems: list[str] = []
    for p, period in enumerate(tariff.periods if tariff else []):
        for j, later in enumerate(period.windows):
            for i, earlier in enumerate(period.windows[:j]):
                days = _windows_overlap(earlier, later)
                if days:
                    loc = ("tariff", "periods", p, "windows", j)
                    line = places.line(loc)
                    problems.append(
                        f"{origin}{f':{line}' if line else ''}: tariff.periods[{p}]."
                        f"windows[{j}]: window {later.name!r} {later.start}-{later.end} "
                        f"overlaps window {earlier.name!r} {earlier.start}-{earlier.end} "
                        f"(windows[{i}]) on {','.join(days)}: make them disjoint")
    return problems


def _check_credentials(groups: list[CredentialsConfig],
                       rigs: list[tuple[str, RigConfig]]) -> list[str]:
    names = {g.name for g in groups}
    problems = [f"{where}: credentials: no [[credentials]] group named {rig.credentials!r}"
                for where, rig in rigs if rig.credentials and rig.credentials not in names]
    seen: set[str] = set()
    for group in groups:
        if group.name in seen:
            problems.append(f"credentials: duplicate group name {group.name!r}")
        seen.add(group.name)
    return problems


def _secret_problem(spec: Any, origin: str, key: str, base: Path) -> str | None:
    if not isinstance(spec, dict) or set(spec) - {"env", "file"} or len(spec) != 1:
        return None
    if "env" in spec:
        if isinstance(spec["env"], str) and spec["env"] not in os.environ:
            return f"{origin}: {key}.env: environment variable {spec['env']} is not set"
        return None
    path = Path(str(spec["file"]))
    path = path if path.is_absolute() else base / path
    try:
        path.read_text()
    except OSError as exc:
        return f"{origin}: {key}.file: cannot read {path}: {exc.strerror}"
    return None


def _raw_secret_problems(raw: Any, origin: str, base: Path, places: TomlPlaces,
                         loc: tuple[str | int, ...] = ()) -> list[str]:
    """Every `{ env = }` / `{ file = }` that cannot be resolved, all in one pass."""
    problems: list[str] = []
    items = (raw.items() if isinstance(raw, dict)
             else enumerate(raw) if isinstance(raw, list) else ())
    for key, value in items:
        here = (*loc, key)
        problem = _secret_problem(value, origin, _where(here), base)
        if problem is not None:
            line = places.line(here)
            problems.append(problem.replace(f"{origin}: ", f"{origin}:{line}: ", 1)
                            if line else problem)
        elif isinstance(value, dict | list):
            problems += _raw_secret_problems(value, origin, base, places, here)
    return problems


def _check_customers(cfg: Config, rigs: list[tuple[str, RigConfig]]) -> list[str]:
    """Customer ids unique, contracts consistent with the site, rigs' customers known."""
    if not cfg.customers:
        return []
    origin, problems = str(cfg.source), []
    known: set[str] = set()
    for i, c in enumerate(cfg.customers):
        where = f"{origin}: customers[{i}]"
        if c.id in known:
            problems.append(f"{where}.id: duplicate customer id {c.id!r}")
        known.add(c.id)
        if c.price.kind == "tariff" and cfg.tariff is None:
            problems.append(f"{where}.price.kind: \"tariff\" needs a [tariff] section")
        if c.price.kind == "tariff" and c.currency != cfg.site.currency:
            problems.append(f"{where}.currency: {c.currency} differs from the site currency "
                            f"{cfg.site.currency}; a passed-through tariff is in the site's")
    problems += [f"{where}: customer: {rig.customer!r} is not in [[customers]]"
                 for where, rig in rigs if rig.customer and rig.customer not in known]
    return problems


def _resolve_secret(spec: SecretSpec | None, base: Path) -> SecretStr | None:
    if spec is None or isinstance(spec, SecretStr):
        return spec
    if spec.env is not None:
        return SecretStr(os.environ[spec.env])
    assert spec.file is not None
    path = spec.file if spec.file.is_absolute() else base / spec.file
    return SecretStr(path.read_text().strip())


def _resolve_item(item: ModelT, base: Path, keys: tuple[str, ...]) -> ModelT:
    return item.model_copy(update={key: _resolve_secret(getattr(item, key), base)
                                   for key in keys})


# what each command reads: a process resolves (and is given) only its own secrets, so one
# config serves every role while each service's environment holds its own passwords only
NEEDS: dict[str, frozenset[str]] = {
    "collector": frozenset({"mqtt.collector", "pdus", "rigs"}),
    "bridge": frozenset({"mqtt.bridge", "influxdb"}),
    "influxdb": frozenset({"influxdb"}),
    # `hashwatt init` / `customers setup`: the database plus the customers' read logins
    "init": frozenset({"influxdb", "customers"}),
}
EVERYTHING = frozenset({"mqtt.collector", "mqtt.bridge", "influxdb", "pdus", "rigs",
                        "customers"})


def _unneeded(raw: dict[str, Any], needs: frozenset[str]) -> list[tuple[str, ...]]:
    """The places of the secrets a role does not read (so they are neither checked nor
    resolved for it)."""
    mqtt: dict[str, Any] = raw["mqtt"] if isinstance(raw.get("mqtt"), dict) else {}
    own = {role for role in ("collector", "bridge") if isinstance(mqtt.get(role), dict)}
    skip: list[tuple[str, ...]] = [("mqtt", role, "password") for role in own
                                   if f"mqtt.{role}" not in needs]
    if not any(f"mqtt.{role}" in needs and role not in own for role in ("collector", "bridge")):
        skip.append(("mqtt", "password"))
    if "influxdb" not in needs:  # every secret of the sink's table, whatever its type
        skip.append(("influxdb",))
    # (this pruned copy only feeds the secret check: whole lists can go)
    skip += [(section,) for section, need in (("pdus", "pdus"), ("rigs", "rigs"),
                                                ("credentials", "rigs"),
                                                ("customers", "customers")) if need not in needs]
    return skip


def _without(raw: dict[str, Any], places: list[tuple[str, ...]]) -> dict[str, Any]:
    out = dict(raw)
    for place in places:
        node: Any = out
        for key in place[:-1]:
            if not isinstance(node.get(key), dict):
                break
            node[key] = node = dict(node[key])
        else:
            node.pop(place[-1], None)
    return out


def _resolve_secrets(cfg: Config, needs: frozenset[str] = EVERYTHING) -> Config:
    """Secrets already checked by _raw_secret_problems: resolving cannot fail here. Those
    the role does not need stay unset."""
    base = cfg.source.parent

    def resolve(spec: SecretSpec | None, needed: bool) -> SecretStr | None:
        return _resolve_secret(spec, base) if needed else None

    roles = {role: login.model_copy(update={"password": resolve(
        login.password, f"mqtt.{role}" in needs)})
        for role in ("collector", "bridge") if (login := getattr(cfg.mqtt, role)) is not None}
    # [mqtt] username/password serve every role that has no table of its own
    shared = any(f"mqtt.{role}" in needs and role not in roles for role in ("collector", "bridge"))
    mqtt = cfg.mqtt.model_copy(update={
        "password": resolve(cfg.mqtt.password, shared), **roles})
    influx = cfg.influxdb
    if influx is not None:  # every secret of the sink's own model (or, unchecked, its table);
        # unneeded ones stay a reference (no value), so a later check still sees them given
        influx = influx.model_copy(update={
            key: _resolve_secret(spec, base) if "influxdb" in needs else spec
            for key, spec in _sink_secrets(influx)})
    # a customer's logins stay a reference where unneeded: whether it has a view of its own
    # (access.password given) decides what the bridge copies, without reading the secret
    customers = [c.model_copy(update={"access": c.access.model_copy(update={
        key: _resolve_secret(spec, base) if "customers" in needs else spec
        for key in ("password", "grafana_password")
        if (spec := getattr(c.access, key)) is not None})}) for c in cfg.customers]

    def items(models: list[ModelT], keys: tuple[str, ...], needed: bool) -> list[ModelT]:
        return [_resolve_item(m, base, keys) if needed
                else m.model_copy(update=dict.fromkeys(keys)) for m in models]

    return cfg.model_copy(update={
        "mqtt": mqtt, "influxdb": influx,
        "pdus": items(cfg.pdus, PDU_SECRETS, "pdus" in needs),
        "rigs": items(cfg.rigs, RIG_SECRETS, "rigs" in needs),
        "credentials": items(cfg.credentials, RIG_SECRETS, "rigs" in needs),
        "customers": customers})


def _sink_secrets(section: SinkConfig) -> list[tuple[str, SecretSpec]]:
    """The secrets of [influxdb]: the values its sink's model made SecretRef/SecretStr, or,
    not yet checked by that model, its `{ env = }` / `{ file = }` tables."""
    found: list[tuple[str, SecretSpec]] = []
    for key, value in {**dict(section), **(section.model_extra or {})}.items():
        if isinstance(value, SecretRef | SecretStr):
            found.append((key, value))
        elif isinstance(value, dict) and len(value) == 1 and set(value) <= {"env", "file"}:
            found.append((key, SecretRef.model_validate(value)))
    return found


def _csv_secret_problems(items: list[tuple[str, Any]], base: Path,
                         keys: tuple[str, ...] = PDU_SECRETS) -> list[str]:
    problems = []
    for where, item in items:
        for key in keys:
            spec = getattr(item, key)
            if isinstance(spec, SecretRef):
                problem = _secret_problem(spec.model_dump(exclude_none=True), where, key,
                                          base)
                if problem:
                    problems.append(problem)
    return problems


def _warn_plain_secrets(path: Path, raw: dict[str, Any], sink: SinkConfig | None) -> None:
    mqtt = raw.get("mqtt", {})
    sink_keys = secret_keys(type(sink)) if sink is not None else []
    literal = [f"{section}.{key}" for section, key in
               (("mqtt", "password"), *(("influxdb", k) for k in sink_keys))
               if isinstance(raw.get(section, {}).get(key), str)]
    literal += [f"mqtt.{role}.password" for role in ("collector", "bridge")
                if isinstance(mqtt.get(role), dict) and isinstance(mqtt[role].get("password"), str)]
    for section in ("rigs", "credentials"):  # rig logins
        items = raw.get(section)
        literal += [f"{section}[{i}].{key}" for i, item in
                    enumerate(items if isinstance(items, list) else [])
                    for key in RIG_SECRETS if isinstance(item, dict)
                    and isinstance(item.get(key), str)]
    if literal and path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s holds secrets (%s) and is readable by other users: chmod 600 it, "
                    "or use { env = \"NAME\" } / { file = \"path\" }", path, ", ".join(literal))


def _warn_unknown_models(rigs: list[tuple[str, RigConfig]]) -> None:
    """One warning per inventory model the models table does not know (no nominal power or
    hashrate for it: wiring checks and nominal power stay unknown)."""
    from hashwatt.models import lookup, model_table

    unknown: dict[str, list[str]] = {}
    for where, rig in rigs:
        if rig.model and lookup(rig.model) is None:
            unknown.setdefault(rig.model, []).append(where)
    folded = {name.casefold(): name for name in model_table()}
    for model, places in unknown.items():
        more = f" and {len(places) - 1} more rigs" if len(places) > 1 else ""
        close = difflib.get_close_matches(model.casefold(), list(folded), n=1, cutoff=0.8)
        hint = f"; did you mean {folded[close[0]]!r}?" if close else ""
        log.warning("%s%s: model: %r is not in the models table, so its nominal power and "
                    "hashrate are unknown%s", places[0], more, model, hint)


def shard(cfg: Config, index: int, count: int) -> Config:
    """The part of the inventory shard index/count owns (stable: a hash of each id), with a
    collector id and spool of its own."""
    if not 0 <= index < count:
        raise ConfigError([f"--shard {index}/{count}: the index must be in 0..{count - 1}"])

    def mine(item_id: str) -> bool:
        return zlib.crc32(item_id.encode()) % count == index

    collector = cfg.collector.model_copy(update={
        "id": f"{cfg.collector.id}-s{index}",
        "spool_path": cfg.collector.spool_path.with_name(
            f"{cfg.collector.spool_path.stem}-s{index}{cfg.collector.spool_path.suffix}")})
    return cfg.model_copy(update={
        "collector": collector, "rigs": [r for r in cfg.rigs if mine(r.id)],
        "pdus": [p for p in cfg.pdus if mine(p.id)],
        "meters": [m for m in cfg.meters if mine(m.id)]})


def _csv_path(base: Path, raw: dict[str, Any], key: str) -> Path | None:
    value = raw.get("inventory", {}).get(key) if isinstance(raw.get("inventory"), dict) else None
    if not isinstance(value, str):
        return None
    path = Path(value)
    return path if path.is_absolute() else base / path


@dataclass
class _Inventory:
    """Rigs, PDUs and meters from the TOML file and the CSV files, each with its place."""

    rigs: list[tuple[str, RigConfig]] = dc_field(default_factory=list)
    pdus: list[tuple[str, PduConfig]] = dc_field(default_factory=list)
    meters: list[tuple[str, MeterConfig]] = dc_field(default_factory=list)
    problems: list[str] = dc_field(default_factory=list)

    def add_csv(self, path: Path | None, model: Any, into: list[Any], what: str) -> list[Any]:
        """Append the rows of a CSV file to `into`; return them."""
        if path is None:
            return []
        items, problems = read_csv_models(path, model, what=what)
        added = [(f"{path}:{line}", item) for line, item in items]
        into += added
        self.problems += problems
        return added


def load_config(path: Path | str, role: str | None = None, *,
                sinks: SinkModels | None = None) -> Config:
    """Read, validate and resolve a config file; raise ConfigError listing every problem
    (TOML keys, CSV rows, secrets, references, tariff windows) in one go. With a role
    ("collector", "bridge", "influxdb") only that role's secrets are checked and resolved
    (the others stay unset), so its environment need not hold anybody else's. `sinks`
    (api -> model, exporters.sinks.CONFIGS; the CLI gives it) checks [influxdb] by its
    sink's own model here; without it the sink checks its table when it is built."""
    path = Path(path)
    text = _read_text(path)
    raw = _parse_toml(path, text)
    places = TomlPlaces(text)
    origin = str(path)
    problems: list[str] = []
    cfg: Config | None = None
    try:
        cfg = Config.model_validate({**raw, "source": path})
    except ValidationError as exc:
        problems += format_problems(origin, exc, places=places)

    def at(loc: tuple[str | int, ...]) -> str:
        line = places.line(loc)
        return f"{origin}:{line}" if line else f"{origin}: {_where(loc)}"

    inv = _Inventory()
    if cfg is not None:
        inv.rigs = [(f"{at(('rigs', i))}: rigs[{i}]", r) for i, r in enumerate(cfg.rigs)]
        inv.pdus = [(f"{at(('pdus', i))}: pdus[{i}]", p) for i, p in enumerate(cfg.pdus)]
        inv.meters = [(f"{at(('meters', i))}: meters[{i}]", m)
                      for i, m in enumerate(cfg.meters)]
    base = path.parent
    csv_rigs = inv.add_csv(_csv_path(base, raw, "csv"), RigConfig, inv.rigs, "inventory")
    csv_pdus = inv.add_csv(_csv_path(base, raw, "pdus_csv"), PduConfig, inv.pdus, "PDU")
    inv.add_csv(_csv_path(base, raw, "meters_csv"), MeterConfig, inv.meters, "meter")
    problems += inv.problems
    needs = NEEDS[role] if role else EVERYTHING
    problems += _raw_secret_problems(_without(raw, _unneeded(raw, needs)), origin, base, places)
    if "pdus" in needs:
        problems += _csv_secret_problems(csv_pdus, base)
    if "rigs" in needs:
        problems += _csv_secret_problems(csv_rigs, base, RIG_SECRETS)
    if cfg is not None:
        problems += _check_credentials(cfg.credentials, inv.rigs)
    problems += _check_unique(origin, inv.rigs)
    problems += _check_outlets([*inv.pdus, *inv.meters], inv.rigs)
    if cfg is not None:
        problems += _check_tariff(origin, places, cfg.tariff)
        problems += _check_customers(cfg, inv.rigs)
        if cfg.influxdb is not None and sinks is not None:
            sink, found = sink_section(origin, cfg.influxdb, sinks, places)
            problems += found
            cfg = cfg.model_copy(update={"influxdb": sink})
    if problems or cfg is None:
        raise ConfigError(problems)
    _warn_plain_secrets(path, raw, cfg.influxdb)
    _warn_unknown_models(inv.rigs)
    cfg = cfg.model_copy(update={"rigs": [r for _, r in inv.rigs],
                                 "pdus": [p for _, p in inv.pdus],
                                 "meters": [m for _, m in inv.meters]})
    return _resolve_secrets(cfg, needs)
