"""The nominal model table (hashwatt/data/models.toml), shared by collector and simulator."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class ModelInfo:
    """Nominal figures of one miner model."""

    name: str
    make: str
    nominal_ths: float
    nominal_w: int
    temp_limit_c: float


@cache
def model_table() -> dict[str, ModelInfo]:
    """All known models, keyed by pyasic's raw model name."""
    text = resources.files("hashwatt").joinpath("data/models.toml").read_text()
    raw = tomllib.loads(text)["models"]
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
