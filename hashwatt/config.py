"""The TOML configuration, validated at start-up into typed models.

Every error names the file, the key (or the CSV line) and what is wrong. Secrets are given
as `{ env = "NAME" }` or `{ file = "path" }` tables (or a literal, with a warning) and are held
as `SecretStr`, so they never show in a repr or a log line.
"""

from __future__ import annotations

import csv
import ipaddress
import logging
import os
import re
import stat
import tomllib
import zlib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from hashwatt.tariff import TariffConfig

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = "/var/lib/hashwatt"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                      r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class ConfigError(Exception):
    """A configuration problem; each line of `problems` names file, key and what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _address(value: str) -> str:
    with_port = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    try:
        ipaddress.ip_address(with_port)
        return value
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", with_port) or not HOSTNAME.match(with_port):
        raise ValueError(f"{value!r} is not a valid IP address or hostname")
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


class InfluxConfig(Strict):
    """InfluxDB: the v1 API (url, database, username/password) or v2 (url, org, bucket, token)."""

    api: Literal["v1", "v2"] = "v1"
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/.*)?$")] = "http://127.0.0.1:8086"
    database: str | None = None
    username: str | None = None
    password: SecretSpec | None = None
    org: str | None = None
    bucket: str | None = None
    token: SecretSpec | None = None
    timeout_s: float = Field(10.0, gt=0, le=300)
    # the hourly energy ledger: a retention policy kept forever (v1), or its own bucket (v2)
    ledger_retention_policy: str = "ledger"
    ledger_bucket: str = "hashwatt-ledger"
    # v1: the ledger in a database of its own (its default retention policy) instead of a
    # retention policy of `database`; access is granted per database (1.x) or bucket (2.x),
    # so only then can a reader see operations without the invoices (README, "Who sees what")
    ledger_database: str | None = None

    def ledger_source(self) -> str:
        """The ledger measurement as InfluxQL names it from a connection to `database`."""
        if self.api == "v1" and self.ledger_database:
            return f'"{self.ledger_database}".."energy_hourly"'
        return f'"{self.ledger_retention_policy}"."energy_hourly"'

    @model_validator(mode="after")
    def _api_fields(self) -> InfluxConfig:
        need = ["database"] if self.api == "v1" else ["org", "bucket", "token"]
        missing = [k for k in need if getattr(self, k) in (None, "")]
        if missing:
            raise ValueError(f"api = \"{self.api}\" needs {', '.join(missing)}")
        return self


class CollectorConfig(Strict):
    """How the collector polls."""

    id: Id = "collector-1"
    interval_s: float = Field(30.0, ge=1, le=3600)
    concurrency: int = Field(200, ge=1, le=10000)
    deadline_s: float = Field(10.0, gt=0, le=300)
    reidentify_after: int = Field(3, ge=1, le=1000)
    # one RPC exchange per poll for firmware whose RPC carries everything; pyasic otherwise
    fast_paths: bool = True
    # readings wait here while the broker is away (a relative path is inside state_dir)
    spool_path: Path = Path("hashwatt-spool.db")
    spool_max_messages: int = Field(1_000_000, ge=100)

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

    @model_validator(mode="after")
    def _outlet_pair(self) -> RigConfig:
        if (self.pdu is None) != (self.outlet is None):
            raise ValueError("pdu and outlet go together: give both or neither")
        return self


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


class InventoryConfig(Strict):
    """More rigs from a CSV file (path relative to the config file)."""

    csv: Path | None = None


class Config(Strict):
    """The whole configuration file."""

    site: SiteConfig
    mqtt: MqttConfig = MqttConfig()
    influxdb: InfluxConfig | None = None
    collector: CollectorConfig = CollectorConfig()
    bridge: BridgeConfig = BridgeConfig()
    inventory: InventoryConfig = InventoryConfig()
    rigs: list[RigConfig] = []
    pdus: list[PduConfig] = []
    meters: list[MeterConfig] = []
    tariff: TariffConfig | None = None
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
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("SecretRef", "SecretStr", "function-after", "str"):
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _message(err: Any) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "string_pattern_mismatch":
        return f"{err['input']!r} has the wrong form (expected {err['ctx']['pattern']})"
    return str(msg).removeprefix("Value error, ")


def format_problems(origin: str, exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per validation error: origin, dotted key, message."""
    seen: set[str] = set()
    lines = []
    for err in exc.errors():
        where = _where(err["loc"])
        if where in seen:  # a union gives one error per alternative: report the first
            continue
        seen.add(where)
        lines.append(f"{origin}: {prefix}{where}: {_message(err)}")
    return lines


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


RIG_ADAPTER: TypeAdapter[RigConfig] = TypeAdapter(RigConfig)
CSV_COLUMNS = set(RigConfig.model_fields)


ModelT = TypeVar("ModelT", bound=BaseModel)


def load_data_file(path: Path, model: type[ModelT]) -> ModelT:
    """A TOML data file (PDU profile, register map) validated into model, named after the
    file; errors name the file and the key."""
    raw = _read_toml(path)
    try:
        return model.model_validate({**raw, "name": path.stem})
    except ValidationError as exc:
        raise ConfigError(format_problems(str(path), exc)) from None


def load_inventory_csv(path: Path) -> list[tuple[int, RigConfig]]:
    """Rigs from a CSV inventory, with their line numbers; empty cells mean "not set"."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError([f"{path}: inventory file not found"]) from None
    reader = csv.DictReader(text.splitlines())
    unknown = set(reader.fieldnames or []) - CSV_COLUMNS
    if unknown:
        raise ConfigError([f"{path}:1: unknown column(s) {', '.join(sorted(unknown))}; "
                           f"known: {', '.join(sorted(CSV_COLUMNS))}"])
    rigs, problems = [], []
    for row in reader:
        line = reader.line_num
        cleaned = {k: v.strip() for k, v in row.items() if k and v is not None and v.strip()}
        try:
            rigs.append((line, RIG_ADAPTER.validate_python(cleaned)))
        except ValidationError as exc:
            problems += [p.replace(f"{path}: ", f"{path}:{line}: ", 1)
                         for p in format_problems(str(path), exc)]
    if problems:
        raise ConfigError(problems)
    return rigs


def _check_unique(origin: str, rigs: list[tuple[str, RigConfig]]) -> list[str]:
    problems: list[str] = []
    ids: dict[str, str] = {}
    addresses: dict[str, str] = {}
    for where, rig in rigs:
        for seen, key, value in ((ids, "id", rig.id), (addresses, "address", rig.address)):
            if value in seen:
                problems.append(f"{where}: {key}: duplicate rig {key} {value!r} "
                                f"(first at {seen[value]})")
            else:
                seen[value] = where
    return problems


def _check_outlets(cfg: Config, rigs: list[tuple[str, RigConfig]]) -> list[str]:
    pdus = {p.id for p in cfg.pdus}
    problems: list[str] = []
    seen: set[str] = set()
    ids = [("pdus", i, p.id) for i, p in enumerate(cfg.pdus)]
    ids += [("meters", i, m.id) for i, m in enumerate(cfg.meters)]
    for kind, i, device_id in ids:
        if device_id in seen:
            problems.append(f"{cfg.source}: {kind}[{i}].id: duplicate PDU/meter id "
                            f"{device_id!r}")
        seen.add(device_id)
    taken: dict[tuple[str, int | None], str] = {}
    for where, rig in rigs:
        if rig.pdu is None:
            continue
        if rig.pdu not in pdus:
            problems.append(f"{where}: pdu: no PDU {rig.pdu!r} in [[pdus]]")
        key = (rig.pdu, rig.outlet)
        if key in taken:
            problems.append(f"{where}: outlet: {rig.pdu} outlet {rig.outlet} is already "
                            f"mapped to {taken[key]}")
        taken[key] = rig.id
    return problems


def _resolve_secret(spec: SecretSpec | None, origin: str, key: str,
                    base: Path) -> SecretStr | None:
    if spec is None or isinstance(spec, SecretStr):
        return spec
    if spec.env is not None:
        value = os.environ.get(spec.env)
        if value is None:
            raise ConfigError([f"{origin}: {key}.env: environment variable {spec.env} is not set"])
        return SecretStr(value)
    assert spec.file is not None
    path = spec.file if spec.file.is_absolute() else base / spec.file
    try:
        return SecretStr(path.read_text().strip())
    except OSError as exc:
        raise ConfigError([f"{origin}: {key}.file: cannot read {path}: {exc.strerror}"]) from None


# what each command reads: a process resolves (and is given) only its own secrets, so one
# config serves every role while each service's environment holds its own passwords only
NEEDS: dict[str, frozenset[str]] = {
    "collector": frozenset({"mqtt.collector", "pdus"}),
    "bridge": frozenset({"mqtt.bridge", "influxdb"}),
    "influxdb": frozenset({"influxdb"}),
}
EVERYTHING = frozenset({"mqtt.collector", "mqtt.bridge", "influxdb", "pdus"})


def _resolve_secrets(cfg: Config, origin: str, needs: frozenset[str] = EVERYTHING) -> Config:
    base = cfg.source.parent

    def resolve(spec: SecretSpec | None, key: str, needed: bool) -> SecretStr | None:
        return _resolve_secret(spec, origin, key, base) if needed else None

    roles = {role: login.model_copy(update={"password": resolve(
        login.password, f"mqtt.{role}.password", f"mqtt.{role}" in needs)})
        for role in ("collector", "bridge") if (login := getattr(cfg.mqtt, role)) is not None}
    # [mqtt] username/password serve every role that has no table of its own
    shared = any(f"mqtt.{role}" in needs and role not in roles for role in ("collector", "bridge"))
    mqtt = cfg.mqtt.model_copy(update={
        "password": resolve(cfg.mqtt.password, "mqtt.password", shared), **roles})
    influx = cfg.influxdb
    if influx is not None:
        influx = influx.model_copy(update={
            key: resolve(getattr(influx, key), f"influxdb.{key}", "influxdb" in needs)
            for key in ("password", "token")})
    pdus = [pdu.model_copy(update={
        key: resolve(getattr(pdu, key), f"pdus[{i}].{key}", "pdus" in needs)
        for key in ("community", "v3_auth_key", "v3_priv_key")})
        for i, pdu in enumerate(cfg.pdus)]
    return cfg.model_copy(update={"mqtt": mqtt, "influxdb": influx, "pdus": pdus})


def _warn_plain_secrets(path: Path, raw: dict[str, Any]) -> None:
    mqtt = raw.get("mqtt", {})
    literal = [f"{section}.{key}" for section, key in
               (("mqtt", "password"), ("influxdb", "password"), ("influxdb", "token"))
               if isinstance(raw.get(section, {}).get(key), str)]
    literal += [f"mqtt.{role}.password" for role in ("collector", "bridge")
                if isinstance(mqtt.get(role), dict) and isinstance(mqtt[role].get("password"), str)]
    if literal and path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s holds secrets (%s) and is readable by other users: chmod 600 it, "
                    "or use { env = \"NAME\" } / { file = \"path\" }", path, ", ".join(literal))


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


def load_config(path: Path | str, role: str | None = None) -> Config:
    """Read, validate and resolve a config file; raise ConfigError listing every problem.
    With a role ("collector", "bridge", "influxdb"), only that role's secrets are resolved
    (the others are left unset), so its environment need not hold anybody else's."""
    path = Path(path)
    raw = _read_toml(path)
    try:
        cfg = Config.model_validate({**raw, "source": path})
    except ValidationError as exc:
        raise ConfigError(format_problems(str(path), exc)) from None
    rigs = [(f"{path}: rigs[{i}]", r) for i, r in enumerate(cfg.rigs)]
    if cfg.inventory.csv is not None:
        csv_path = cfg.inventory.csv
        csv_path = csv_path if csv_path.is_absolute() else path.parent / csv_path
        rigs += [(f"{csv_path}:{line}", r) for line, r in load_inventory_csv(csv_path)]
    problems = _check_unique(str(path), rigs) + _check_outlets(cfg, rigs)
    if problems:
        raise ConfigError(problems)
    _warn_plain_secrets(path, raw)
    cfg = cfg.model_copy(update={"rigs": [r for _, r in rigs]})
    return _resolve_secrets(cfg, str(path), NEEDS[role] if role else EVERYTHING)
