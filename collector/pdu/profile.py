"""PDU vendor profiles: data files of OIDs, scales and units, auto-detected by sysObjectID."""

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
    """One table column: value = raw * scale; rows keyed by the OID index after the column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    oid: OID
    scale: float = 1.0
    kind: Literal["number", "text"] = "number"
    # Raritan-style sensor tables: keep rows whose index ends with this (e.g. sensor type 5)
    index_suffix: Annotated[str, Field(pattern=r"^\d+(\.\d+)*$")] | None = None
    # Eaton-style tables indexed (unit, outlet): drop leading index components
    index_drop: Annotated[int, Field(ge=0, le=4)] = 0


class DeviceColumns(BaseModel):
    """Whole-device readings."""

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


class Profile(BaseModel):
    """A vendor profile (one TOML file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    vendor: str
    mib: str = ""
    sys_object_ids: list[OID] = []
    unsupported: list[int] = []
    max_repetitions: int = Field(25, ge=1, le=200)
    timeout_s: float = Field(2.0, gt=0, le=60)
    retries: int = Field(1, ge=0, le=10)
    device: DeviceColumns = DeviceColumns()
    phase: PhaseColumns = PhaseColumns()
    fixed_phases: list[FixedPhase] = []
    outlet: OutletColumns = OutletColumns()

    def columns(self) -> list[Column]:
        """Every column the profile reads, in a stable order."""
        out: list[Column] = []
        for group in (self.device, self.phase, *self.fixed_phases, self.outlet):
            out += [c for c in group.__dict__.values() if isinstance(c, Column)]
        return out

    def matches(self, sys_object_id: str) -> bool:
        """True when sysObjectID is one of the profile's, or below one."""
        return any(sys_object_id == p or sys_object_id.startswith(p + ".")
                   for p in self.sys_object_ids)


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


def detect(sys_object_id: str, profiles: dict[str, Profile]) -> Profile | None:
    """The profile with the longest sysObjectID prefix matching the device's."""
    best: tuple[int, Profile] | None = None
    for profile in profiles.values():
        for prefix in profile.sys_object_ids:
            if profile.matches(sys_object_id) and sys_object_id.startswith(prefix) and (
                    best is None or len(prefix) > best[0]):
                best = (len(prefix), profile)
    return best[1] if best else None
