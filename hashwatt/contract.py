"""The MQTT contract between collectors and exporters: topics and message schemas (v1).

One reading = one MQTT message. Payloads carry the schema version, the poll timestamp in
epoch milliseconds (`ts_ms`, not the publish time) and units in field names. Unknown fields
are ignored so that a newer collector can talk to an older exporter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

# re-exported: the names written to InfluxDB live in hashwatt.names
from hashwatt.names import MEASUREMENTS as MEASUREMENTS
from hashwatt.names import Measurement as Measurement

# re-exported: the same messages as TypedDicts, for their senders (hashwatt.payloads)
from hashwatt.payloads import SCHEMA_VERSION as SCHEMA_VERSION
from hashwatt.payloads import BoardDoc as BoardDoc
from hashwatt.payloads import CycleDoc as CycleDoc
from hashwatt.payloads import CycleStatsDoc as CycleStatsDoc
from hashwatt.payloads import OutletDoc as OutletDoc
from hashwatt.payloads import PduBody as PduBody
from hashwatt.payloads import PduDoc as PduDoc
from hashwatt.payloads import PhaseDoc as PhaseDoc
from hashwatt.payloads import RigDoc as RigDoc
from hashwatt.payloads import SpoolStatsDoc as SpoolStatsDoc
from hashwatt.payloads import StatusDoc as StatusDoc
from hashwatt.payloads import pdu_doc as pdu_doc
from hashwatt.power import PowerSource  # the precedence is defined once, there

TOPIC_VERSION = "v1"
SEGMENT = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

Id = Annotated[str, Field(pattern=SEGMENT)]
Tag = Annotated[str, Field(max_length=128)]
NonNeg = Annotated[float, Field(ge=0)]
# active power where the device measures its direction (a meter's phase, a PDU or meter
# total): negative = exported / reversed current transformer, kept as measured
SignedPower = Annotated[float, Field(ge=-1e9, le=1e9)]
Temp = Annotated[float, Field(ge=-60, le=250)]


def rig_topic(prefix: str, site: str, rig_id: str) -> str:
    """Topic of one rig's readings."""
    return f"{prefix}/{TOPIC_VERSION}/{site}/rig/{rig_id}"


def pdu_topic(prefix: str, site: str, pdu_id: str) -> str:
    """Topic of one PDU's (or meter's) readings."""
    return f"{prefix}/{TOPIC_VERSION}/{site}/pdu/{pdu_id}"


def status_topic(prefix: str, site: str, collector_id: str) -> str:
    """Retained status topic of one collector (its last will says offline)."""
    return f"{prefix}/{TOPIC_VERSION}/{site}/collector/{collector_id}/status"


def cycle_topic(prefix: str, site: str, collector_id: str) -> str:
    """Topic of one collector's cycle statistics (spooled like readings, not retained)."""
    return f"{prefix}/{TOPIC_VERSION}/{site}/collector/{collector_id}/cycle"


def stored_topic(prefix: str, site: str, collector_id: str) -> str:
    """Topic on which bridges tell a collector which of its readings are stored."""
    return f"{prefix}/{TOPIC_VERSION}/{site}/collector/{collector_id}/stored"


def subscriptions(prefix: str) -> list[str]:
    """What an exporter subscribes to."""
    return [f"{prefix}/{TOPIC_VERSION}/+/rig/+", f"{prefix}/{TOPIC_VERSION}/+/pdu/+",
            f"{prefix}/{TOPIC_VERSION}/+/collector/+/status",
            f"{prefix}/{TOPIC_VERSION}/+/collector/+/cycle"]


class Message(BaseModel):
    """Base of every payload: strict types (no "12" for 12), no NaN or infinity."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", frozen=True)


class Delivered(Message):
    """A spooled message: the collector's spool epoch and sequence number name it in the
    bridge's stored receipt (absent from older collectors)."""

    spool: Annotated[str, Field(pattern=r"^[0-9a-f]{1,32}$")] | None = None
    seq: Annotated[int, Field(gt=0)] | None = None


class BoardReading(Message):
    """One hashboard."""

    board: Annotated[int, Field(ge=0, le=64)]
    hashrate_ths: NonNeg | None = None
    chip_temp_c: Temp | None = None
    board_temp_c: Temp | None = None
    chips: Annotated[int, Field(ge=0)] | None = None
    expected_chips: Annotated[int, Field(ge=0)] | None = None


class RigReading(Delivered):
    """One rig poll."""

    schema_: Literal[1] = Field(SCHEMA_VERSION, alias="schema")
    kind: Literal["rig"] = "rig"
    ts_ms: Annotated[int, Field(gt=0)]
    site: Id
    rig: Id
    collector: Id
    rack: Tag = ""
    slot: Annotated[int, Field(ge=0, le=100_000)] | None = None
    customer: Tag = ""
    make: Tag = ""
    model: Tag = ""
    firmware: Tag = ""
    online: bool
    error: Annotated[str, Field(max_length=512)] | None = None
    hashrate_ths: NonNeg | None = None
    expected_hashrate_ths: NonNeg | None = None
    power_w: NonNeg | None = None
    power_source: PowerSource | None = None
    temp_max_c: Temp | None = None
    temp_limit_c: Temp | None = None
    nominal_efficiency_j_th: NonNeg | None = None
    env_temp_c: Temp | None = None
    # default_factory: a literal [] default is deep-copied for every message
    fans_rpm: list[Annotated[int, Field(ge=0, le=100_000)]] = Field(default_factory=list)
    boards: list[BoardReading] = Field(default_factory=list)
    boards_total: Annotated[int, Field(ge=0, le=64)] | None = None
    uptime_s: Annotated[int, Field(ge=0)] | None = None
    # None: the rig's error list could not be read; []: the rig reports no errors
    errors: list[Annotated[str, Field(max_length=256)]] | None = Field(default_factory=list)
    # the inventory's maintenance flag: alerts muted, left out of availability
    maintenance: bool = False
    # inventory sanity: what the rig identified as, and whether that or its outlet's power
    # contradicts the inventory (None: not checked, e.g. no outlet mapped)
    identified_model: Tag = ""
    model_mismatch: bool | None = None
    wiring_suspect: bool | None = None
    wiring_reason: Annotated[str, Field(max_length=256)] | None = None
    # pool integrity: the active pool and worker, and whether the site's allow-list has them
    pool_url: Annotated[str, Field(max_length=256)] | None = None
    pool_user: Annotated[str, Field(max_length=256)] | None = None
    pool_unexpected: bool | None = None
    pool_reason: Annotated[str, Field(max_length=256)] | None = None
    # fields the collector dropped as invalid or implausible ("hashrate_ths: above 300")
    invalid: list[Annotated[str, Field(max_length=256)]] = Field(default_factory=list)

    model_config = ConfigDict(populate_by_name=True)


class PhaseReading(Message):
    """One phase, bank or circuit of a PDU; rating_a is its breaker rating."""

    phase: Annotated[str, Field(min_length=1, max_length=32)]
    unit: Tag = ""  # the daisy-chained unit (master + link units), when there are several
    current_a: NonNeg | None = None
    voltage_v: NonNeg | None = None
    power_w: SignedPower | None = None
    rating_a: Annotated[float, Field(gt=0)] | None = None


class OutletReading(Message):
    """One outlet, with the rig plugged into it when the inventory maps one."""

    outlet: Annotated[int, Field(ge=0, le=10_000)]
    unit: Tag = ""  # the daisy-chained unit, when there are several
    name: Tag = ""
    current_a: NonNeg | None = None
    voltage_v: NonNeg | None = None
    power_w: NonNeg | None = None
    energy_kwh: NonNeg | None = None
    energy_reset: bool = False
    rig: Id | None = None
    customer: Tag = ""
    rack: Tag = ""


class PduReading(Delivered):
    """One PDU or power-meter poll."""

    schema_: Literal[1] = Field(SCHEMA_VERSION, alias="schema")
    kind: Literal["pdu"] = "pdu"
    ts_ms: Annotated[int, Field(gt=0)]
    site: Id
    pdu: Id
    collector: Id
    rack: Tag = ""
    vendor: Tag = ""
    model: Tag = ""
    profile: Tag = ""
    online: bool
    error: Annotated[str, Field(max_length=512)] | None = None
    power_w: SignedPower | None = None
    energy_kwh: NonNeg | None = None
    voltage_v: NonNeg | None = None
    current_a: NonNeg | None = None
    energy_reset: bool = False
    phases: list[PhaseReading] = Field(default_factory=list)
    outlets: list[OutletReading] = Field(default_factory=list)
    invalid: list[Annotated[str, Field(max_length=256)]] = Field(default_factory=list)

    model_config = ConfigDict(populate_by_name=True)


class CycleStats(Message):
    """A collector's figures for its last poll cycle."""

    cycle_s: NonNeg
    rigs_total: int
    rigs_ok: int
    rigs_failed: int
    rigs_timeout: int
    identified: int
    published: int
    overruns: int = 0
    pdus_total: int = 0
    pdus_ok: int = 0
    spool_depth: int = 0
    spool_dropped: int = 0
    spool_refused: int = 0
    spool_memory: int = 0  # readings held in memory because the spool's disk refused them
    spool_disk_errors: int = 0
    unstored: int = 0  # sent, not yet known stored
    resent: int = 0
    fields_dropped: int = 0  # device values dropped as invalid or implausible
    broker_connected: bool | None = None


class CycleReport(Delivered):
    """One poll cycle's statistics, stamped with the cycle's end (a resend is the same
    point, never a new cycle)."""

    schema_: Literal[1] = Field(SCHEMA_VERSION, alias="schema")
    kind: Literal["cycle"] = "cycle"
    site: Id
    collector: Id
    ts_ms: Annotated[int, Field(gt=0)]
    stats: CycleStats

    model_config = ConfigDict(populate_by_name=True)


class CollectorStatus(Message):
    """The retained status of a collector: online with stats, or offline (its last will)."""

    schema_: Literal[1] = Field(SCHEMA_VERSION, alias="schema")
    kind: Literal["collector"] = "collector"
    site: Id
    collector: Id
    state: Literal["online", "offline"]
    ts_ms: Annotated[int, Field(gt=0)] | None = None
    stats: CycleStats | None = None

    model_config = ConfigDict(populate_by_name=True)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The message model inside an annotation (`list[BoardReading]`, `CycleStats | None`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def unknown_keys(model: type[BaseModel], payload: Mapping[str, Any], where: str = "") -> list[str]:
    """Keys of a payload its model does not name, nested ones as `outlets[2].powr_w`.

    The bridge ignores them (a newer collector may add fields); the tests refuse them in
    every sender's output, so a mistyped key fails a test instead of vanishing."""
    fields = {field.alias or name: field for name, field in model.model_fields.items()}
    unknown: list[str] = []
    for key, value in payload.items():
        field = fields.get(key)
        if field is None:
            unknown.append(f"{where}{key}")
            continue
        nested = _nested_model(field.annotation)
        if nested is not None and isinstance(value, Mapping):
            unknown += unknown_keys(nested, value, f"{where}{key}.")
        elif nested is not None and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    unknown += unknown_keys(nested, item, f"{where}{key}[{i}].")
    return unknown
