"""The nominal model table (hashwatt/data/models.toml), shared by collector and simulator."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """Nominal figures of one miner model."""

    name: str
    make: str
    nominal_ths: float
    nominal_w: int
    temp_limit_c: float
    # plausibility bounds (see [plausible] in models.toml); None: derived from the defaults
    max_hashrate_ths: float | None = None
    max_power_w: float | None = None
    max_fan_rpm: int | None = None
    temp_min_c: float | None = None
    temp_max_c: float | None = None


@dataclass(frozen=True, kw_only=True)
class Bounds:
    """What a device value may be before it is taken for a broken reading."""

    max_hashrate_ths: float
    max_power_w: float
    max_fan_rpm: int
    temp_min_c: float
    temp_max_c: float


def _table() -> dict:
    text = resources.files("hashwatt").joinpath("data/models.toml").read_text()
    return tomllib.loads(text)


@cache
def bounds(model: str | None) -> Bounds:
    """The plausibility bounds of a model (the table's defaults for an unknown one)."""
    d = _table()["plausible"]
    info = lookup(model)
    if info is None:
        return Bounds(max_hashrate_ths=float(d["max_hashrate_ths"]),
                      max_power_w=float(d["max_power_w"]), max_fan_rpm=int(d["max_fan_rpm"]),
                      temp_min_c=float(d["temp_min_c"]), temp_max_c=float(d["temp_max_c"]))
    return Bounds(
        max_hashrate_ths=info.max_hashrate_ths or min(info.nominal_ths * d["hashrate_factor"],
                                                      d["max_hashrate_ths"]),
        max_power_w=info.max_power_w or min(info.nominal_w * d["power_factor"],
                                            d["max_power_w"]),
        max_fan_rpm=info.max_fan_rpm or int(d["max_fan_rpm"]),
        temp_min_c=d["temp_min_c"] if info.temp_min_c is None else info.temp_min_c,
        temp_max_c=d["temp_max_c"] if info.temp_max_c is None else info.temp_max_c)


@cache
def model_table() -> dict[str, ModelInfo]:
    """All known models, keyed by pyasic's raw model name."""
    raw = _table()["models"]
    return {name: ModelInfo(name=name, **fields) for name, fields in raw.items()}


def lookup(model: str | None) -> ModelInfo | None:
    """The nominal figures for a model name, case-insensitively, or None."""
    if not model:
        return None
    table = model_table()
    if model in table:
        return table[model]
    folded = {name.casefold(): info for name, info in table.items()}
    return folded.get(model.casefold())
