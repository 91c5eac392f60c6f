"""Register maps (data files) and their decoding."""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hashwatt.config import load_data_file

WIDTH = {"float32": 2, "int32": 2, "uint32": 2, "int16": 1, "uint16": 1, "int64": 4}
FORMAT = {"float32": ">f", "int32": ">i", "uint32": ">I", "int16": ">h", "uint16": ">H",
          "int64": ">q"}
RegisterType = Literal["float32", "int32", "uint32", "int16", "uint16", "int64"]


class Register(BaseModel):
    """One value: protocol address, type and scale to the unit in the key's name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: int = Field(ge=0, le=65535)
    type: RegisterType = "float32"
    scale: float = 1.0


class Values(BaseModel):
    """The values of a device or of one phase."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    power_w: Register | None = None
    energy_kwh: Register | None = None
    voltage_v: Register | None = None
    current_a: Register | None = None


class PhaseValues(Values):
    """One phase's values."""

    phase: str


class RegisterMap(BaseModel):
    """A meter model's register map (one TOML file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    vendor: str
    model: str
    function: Literal["input", "holding"] = "holding"
    word_order: Literal["big", "little"] = "big"
    # registers per read request: the Modbus limit is 125; some meters answer fewer
    # (Eastron SDM630MCT: at most 30 values of 2 registers per request)
    max_block: int = Field(100, ge=2, le=125)
    # device current_a is the sum of the line currents (the total the device draws) on every
    # map: a meter that gives only an average gets the sum of its phases' currents
    current_from_phases: bool = False
    # the raw patterns the vendor's table says mean "not available", per register type, as
    # hex of the words in the meter's order (Schneider PowerLogic: INT16 0x8000); a float32
    # NaN or infinity is "not available" on every map
    not_available: dict[RegisterType, str] = {}
    device: Values = Values()
    phases: list[PhaseValues] = []

    @field_validator("not_available")
    @classmethod
    def _hex_patterns(cls, value: dict[str, str]) -> dict[str, str]:
        for kind, pattern in value.items():
            if len(pattern.removeprefix("0x")) != 4 * WIDTH[kind]:
                raise ValueError(f"{kind}: {pattern!r} is not {WIDTH[kind]} words of hex")
            int(pattern, 16)
        return value

    def registers(self) -> list[Register]:
        """Every register the map reads."""
        groups: list[Values] = [self.device, *self.phases]
        return [r for g in groups for r in g.__dict__.values() if isinstance(r, Register)]

    def blocks(self) -> list[tuple[int, int]]:
        """(start, count) reads covering every register, merged up to max_block."""
        spans = sorted({(r.address, r.address + WIDTH[r.type]) for r in self.registers()})
        out: list[list[int]] = []
        for start, end in spans:
            if out and end - out[-1][0] <= self.max_block:
                out[-1][1] = max(out[-1][1], end)
            else:
                out.append([start, end])
        return [(start, end - start) for start, end in out]


def float32_text(value: float) -> float:
    """The shortest decimal that is this float32 (what the meter's display shows): -45.6,
    not -45.599998474121094."""
    for digits in range(6, 10):
        short = float(f"{value:.{digits}g}")
        if struct.unpack(">f", struct.pack(">f", short))[0] == value:
            return short
    return value


def decode(register: Register, words: dict[int, int], word_order: str,
           scale: float = 1.0,
           not_available: Mapping[RegisterType, str] | None = None) -> float | None:
    """The scaled value of one register from the words read; None when not finite or when
    its raw words are the map's "not available" pattern for its type."""
    raw = [words[register.address + i] for i in range(WIDTH[register.type])]
    if word_order == "little":
        raw.reverse()
    pattern = (not_available or {}).get(register.type)
    if pattern is not None and int("".join(f"{w:04x}" for w in raw), 16) == int(pattern, 16):
        return None
    value = struct.unpack(FORMAT[register.type], struct.pack(f">{len(raw)}H", *raw))[0]
    if not math.isfinite(value):
        return None
    if register.type == "float32":
        value = float32_text(value)
    return round(value * register.scale * scale, 6)


def load_map(path: Path) -> RegisterMap:
    """Read and validate one register map."""
    return load_data_file(path, RegisterMap)


@cache
def builtin_maps() -> dict[str, RegisterMap]:
    """The register maps shipped in collector/meters/maps."""
    folder = resources.files("collector.meters").joinpath("maps")
    return {e.name[:-5]: load_map(Path(str(e))) for e in sorted(folder.iterdir(),
                                                                key=lambda e: e.name)
            if e.name.endswith(".toml")}
