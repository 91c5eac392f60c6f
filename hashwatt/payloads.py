"""The messages as their senders build them: TypedDicts of the contract's models.

hashwatt.contract's pydantic models check a message where it arrives (the bridge); these
TypedDicts type it where it is built (the collector, the benchmarks, the simulator), so mypy
refuses a mistyped key or a wrong value type at no cost on the hot path (a TypedDict is a
plain dict at run time). tests/test_contract_payloads.py checks that each TypedDict names
exactly the keys of its model, nested ones too, so the two cannot drift. hashwatt.contract
re-exports them.

Keys a PDU profile or a meter's register map names at run time (`power_w` of a device, a
phase, an outlet) are typed by DeviceValues, PhaseValues and OutletValues; the same test
checks those maps' names against them.
"""


from typing import Literal, Required, TypedDict

from hashwatt.power import PowerSource

SCHEMA_VERSION: Literal[1] = 1


class BoardDoc(TypedDict, total=False):
    """One hashboard (contract.BoardReading)."""

    board: Required[int]
    hashrate_ths: float | None
    chip_temp_c: float | None
    board_temp_c: float | None
    chips: int | None
    expected_chips: int | None


class RigDoc(TypedDict, total=False):
    """One rig poll (contract.RigReading)."""

    schema: Required[Literal[1]]
    kind: Required[Literal["rig"]]
    ts_ms: Required[int]
    site: Required[str]
    rig: Required[str]
    collector: Required[str]
    online: Required[bool]
    spool: str | None  # put in front by the publisher when it sends the spooled message
    seq: int | None
    rack: str
    slot: int | None
    customer: str
    make: str
    model: str
    firmware: str
    error: str | None
    hashrate_ths: float | None
    expected_hashrate_ths: float | None
    power_w: float | None
    power_source: PowerSource | None
    temp_max_c: float | None
    temp_limit_c: float | None
    nominal_efficiency_j_th: float | None
    env_temp_c: float | None
    fans_rpm: list[int]
    boards: list[BoardDoc]
    boards_total: int | None
    uptime_s: int | None
    errors: list[str] | None
    maintenance: bool
    identified_model: str
    model_mismatch: bool | None
    wiring_suspect: bool | None
    wiring_reason: str | None
    pool_url: str | None
    pool_user: str | None
    pool_unexpected: bool | None
    pool_reason: str | None
    invalid: list[str]


class DeviceValues(TypedDict, total=False):
    """A PDU's or meter's whole-device figures (named by profiles and register maps)."""

    power_w: float | None
    energy_kwh: float | None
    voltage_v: float | None
    current_a: float | None


class PhaseValues(TypedDict, total=False):
    """One phase's figures (named by profiles and register maps)."""

    current_a: float | None
    voltage_v: float | None
    power_w: float | None
    rating_a: float | None


class OutletValues(TypedDict, total=False):
    """One outlet's figures (named by profiles)."""

    name: str
    current_a: float | None
    voltage_v: float | None
    power_w: float | None
    energy_kwh: float | None


class PhaseDoc(PhaseValues, total=False):
    """One phase, bank or circuit (contract.PhaseReading)."""

    phase: Required[str]
    unit: str


class OutletDoc(OutletValues, total=False):
    """One outlet (contract.OutletReading)."""

    outlet: Required[int]
    unit: str
    energy_reset: bool
    rig: str | None
    customer: str
    rack: str


class PduBody(DeviceValues, total=False):
    """What a PDU or meter poll found: a PduDoc without the header every poll has."""

    online: bool
    error: str | None
    vendor: str
    model: str
    profile: str
    energy_reset: bool
    phases: list[PhaseDoc]
    outlets: list[OutletDoc]
    invalid: list[str]


class PduDoc(PduBody, total=False):
    """One PDU or power-meter poll (contract.PduReading)."""

    schema: Required[Literal[1]]
    kind: Required[Literal["pdu"]]
    ts_ms: Required[int]
    site: Required[str]
    pdu: Required[str]
    collector: Required[str]
    spool: str | None
    seq: int | None
    rack: str


class SpoolStatsDoc(TypedDict, total=False):
    """The publisher's part of a cycle's statistics."""

    spool_depth: int
    spool_dropped: int
    spool_refused: int
    spool_memory: int
    spool_disk_errors: int
    unstored: int
    resent: int
    broker_connected: bool | None


class CycleStatsDoc(SpoolStatsDoc, total=False):
    """A collector's figures for its last poll cycle (contract.CycleStats)."""

    cycle_s: Required[float]
    rigs_total: Required[int]
    rigs_ok: Required[int]
    rigs_failed: Required[int]
    rigs_timeout: Required[int]
    identified: Required[int]
    published: Required[int]
    overruns: int
    pdus_total: int
    pdus_ok: int
    fields_dropped: int


class CycleDoc(TypedDict, total=False):
    """One poll cycle's statistics (contract.CycleReport)."""

    schema: Required[Literal[1]]
    kind: Required[Literal["cycle"]]
    site: Required[str]
    collector: Required[str]
    ts_ms: Required[int]
    stats: Required[CycleStatsDoc]
    spool: str | None
    seq: int | None


class StatusDoc(TypedDict, total=False):
    """The retained status of a collector (contract.CollectorStatus)."""

    schema: Required[Literal[1]]
    kind: Required[Literal["collector"]]
    site: Required[str]
    collector: Required[str]
    state: Required[Literal["online", "offline"]]
    ts_ms: int | None
    stats: CycleStatsDoc | None


def pdu_doc(*, ts_ms: int, site: str, pdu: str, collector: str, online: bool,
            error: str | None = None, rack: str | None = None) -> PduDoc:
    """The header every PDU or meter reading has (the PDU source, the meter source and the
    collector's deadline build theirs here); rack only when the inventory gives one."""
    doc: PduDoc = {"schema": SCHEMA_VERSION, "kind": "pdu", "ts_ms": ts_ms, "site": site,
                   "pdu": pdu, "collector": collector, "online": online, "error": error}
    if rack is not None:
        doc["rack"] = rack
    return doc
