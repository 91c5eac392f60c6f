"""PDU vendor profiles: data files of OIDs, scales and units, detected by sysObjectID."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from hashwatt.config import load_data_file

OID = Annotated[str, Field(pattern=r"^\d+(\.\d+)+$")]
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"


class Column(BaseModel):
    """One table column: value = raw * scale / 10**digits; rows keyed by the OID index."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    oid: OID
    scale: float = 1.0
    kind: Literal["number", "text"] = "number"
    # a column of the same index that holds each value's decimal digits (Raritan PDU2-MIB
    # inletSensorDecimalDigits): a value whose digits are missing stays unknown
    digits: OID | None = None
    # the first index component is the unit of a daisy chain (Sentry4 st4UnitIndex,
    # Eaton strappingIndex): kept as the row's unit, not part of its key
    unit: bool = False
    # sensor tables: keep rows whose index ends with this (e.g. sensor type 5), and strip it
    index_suffix: Annotated[str, Field(pattern=r"^\d+(\.\d+)*$")] | None = None
    # drop this many leading index components (after the unit): input cords, inlets
    index_drop: Annotated[int, Field(ge=0, le=4)] = 0
    # a TruthValue column of the same index saying whether the sensor is available (Raritan
    # measurementsInletSensorIsAvailable): false(2) makes the value unknown, never 0
    available: OID | None = None
    # rows named by what another column of the same index says they measure (Eaton
    # inputCurrentMeasType phase1(3) -> phase "1"); rows of other kinds (neutral, total) dropped
    key_column: OID | None = None
    key_values: dict[str, str] = {}
    # device columns only: used when this column yields nothing (APC legacy model OID)
    fallback: Column | None = None

    def oids(self) -> list[str]:
        """Every OID this column needs walked (the value, its digits, its key, its fallback's)."""
        out = [self.oid] + [o for o in (self.digits, self.key_column, self.available) if o]
        return out + (self.fallback.oids() if self.fallback else [])


class DeviceColumns(BaseModel):
    """Whole-device readings; power and energy are summed over the rows (units, cords)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Column | None = None
    power_w: Column | None = None
    energy_kwh: Column | None = None
    voltage_v: Column | None = None
    current_a: Column | None = None


class PhaseColumns(BaseModel):
    """Per phase (or bank / circuit) readings; rating_a is the breaker rating."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    current_a: Column | None = None
    voltage_v: Column | None = None
    power_w: Column | None = None
    rating_a: Column | None = None


class FixedPhase(PhaseColumns):
    """A phase whose readings are columns of the device's row (Geist: VoltsA, VoltsB, ...)."""

    phase: Annotated[str, Field(min_length=1, max_length=32)]


class OutletColumns(BaseModel):
    """Per outlet readings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Column | None = None
    current_a: Column | None = None
    voltage_v: Column | None = None
    power_w: Column | None = None
    energy_kwh: Column | None = None


Group = DeviceColumns | PhaseColumns | OutletColumns


def group_columns(group: Group) -> list[Column]:
    """The columns of one group, in field order."""
    return [c for c in group.__dict__.values() if isinstance(c, Column)]


class Profile(BaseModel):
    """A vendor profile (one TOML file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    vendor: str
    mib: str = ""
    # the MIB group the profile reads, named in the error when a unit answers without it
    table: str = ""
    sys_object_ids: list[OID] = []
    # detection by probe when no sysObjectID matches: a column only this MIB group has
    probe: OID | None = None
    unsupported: list[int] = []
    # the MIB says any negative value means "not available" (EATON-EPDU-MIB)
    negative_unavailable: bool = False
    max_repetitions: int = Field(25, ge=1, le=200)
    timeout_s: float = Field(2.0, gt=0, le=60)
    retries: int = Field(1, ge=0, le=10)
    device: DeviceColumns = DeviceColumns()
    phase: PhaseColumns = PhaseColumns()
    # used when `phase` has no rows: a single-phase unit's inlet is its phase (Raritan)
    phase_fallback: PhaseColumns | None = None
    # a phase-table row with a current but none of these metrics, on a unit whose other rows
    # have them, is that unit's neutral and is published as phase "N" (Sentry3 wye towers
    # report their neutral as one more infeed whose voltage and power are -1)
    neutral_without: list[Literal["voltage_v", "power_w"]] = []
    fixed_phases: list[FixedPhase] = []
    outlet: OutletColumns = OutletColumns()

    def columns(self) -> list[Column]:
        """Every column the profile reads, in a stable order."""
        groups: list[Group] = [self.device, self.phase, *self.fixed_phases, self.outlet]
        if self.phase_fallback is not None:
            groups.append(self.phase_fallback)
        return [c for g in groups for c in group_columns(g)]

    def oids(self) -> list[str]:
        """Every OID to walk, each once, in a stable order."""
        return list(dict.fromkeys(o for c in self.columns() for o in c.oids()))

    def matches(self, sys_object_id: str) -> bool:
        """True when sysObjectID is one of the profile's, or below one."""
        return any(sys_object_id == p or sys_object_id.startswith(p + ".")
                   for p in self.sys_object_ids)

    def missing_table(self) -> str:
        """The error for a unit that answers but has none of the profile's tables."""
        table = self.table or self.mib or self.name
        return f"no {table} table: not {_article(table)} {table} device?"


def _article(word: str) -> str:
    """'an' before a vowel sound: ePDU, rPDU2 (an acronym read 'ar'), 'a' otherwise."""
    first, second = word[:1].lower(), word[1:2]
    acronym = second.isupper() or second.isdigit()
    return "an" if first in "aeio" or (acronym and first in "fhlmnrsx") else "a"


class NotPdu(BaseModel):
    """A device no profile reads, told by its sysObjectID prefix or a column it answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    what: Annotated[str, Field(min_length=1, max_length=200)]
    prefix: OID | None = None
    probe: OID | None = None


class NotPdus(BaseModel):
    """collector/pdu/not_pdus.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    device: list[NotPdu] = []
    vendors: dict[Annotated[str, Field(pattern=r"^\d+$")], str] = {}


@cache
def _not_pdus_file() -> NotPdus:
    path = Path(str(resources.files("collector.pdu").joinpath("not_pdus.toml")))
    return load_data_file(path, NotPdus)


def not_pdus() -> list[NotPdu]:
    """Devices that answer at a PDU's address but that no profile reads."""
    return _not_pdus_file().device


def vendor_of(sys_object_id: str) -> str | None:
    """The vendor a sysObjectID's enterprise number (1.3.6.1.4.1.N) belongs to, if known."""
    parts = sys_object_id.removeprefix(".").split(".")
    if parts[:6] != ["1", "3", "6", "1", "4", "1"] or len(parts) < 7:
        return None
    return _not_pdus_file().vendors.get(parts[6])


def load_profile(path: Path) -> Profile:
    """Read and validate one profile file."""
    return load_data_file(path, Profile)


@cache
def builtin_profiles() -> dict[str, Profile]:
    """The profiles shipped in collector/pdu/profiles."""
    folder = resources.files("collector.pdu").joinpath("profiles")
    out = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            out[entry.name[:-5]] = load_profile(Path(str(entry)))
    return out


def all_profiles(extra_dir: Path | None = None) -> dict[str, Profile]:
    """Built-in profiles plus a site's own (which win on a name clash)."""
    profiles = dict(builtin_profiles())
    if extra_dir is not None:
        for path in sorted(extra_dir.glob("*.toml")):
            profiles[path.stem] = load_profile(path)
    return profiles


def detect(sys_object_id: str, profiles: dict[str, Profile]) -> tuple[Profile, str] | None:
    """The profile with the longest sysObjectID prefix matching the device's, and the prefix."""
    best: tuple[Profile, str] | None = None
    for profile in profiles.values():
        for prefix in profile.sys_object_ids:
            if (sys_object_id == prefix or sys_object_id.startswith(prefix + ".")) and (
                    best is None or len(prefix) > len(best[1])):
                best = (profile, prefix)
    return best
