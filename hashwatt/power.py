"""Where a rig's power figure comes from, best first: defined once for the collector (which
picks the figure it publishes) and the energy ledger (which picks the source of each quarter
hour's energy)."""

from __future__ import annotations

from typing import Literal

PowerSource = Literal["pdu", "miner", "nominal"]
# the order a published reading's power_source is chosen in: wall power from the PDU outlet,
# then the miner's own figure, then the model's nominal figure
POWER_SOURCES: tuple[PowerSource, ...] = ("pdu", "miner", "nominal")
# the energy ledger's sources, best first: the outlet's energy counter beats every power figure
LEDGER_SOURCES = ("pdu_energy", "pdu_power", "miner", "nominal")
MEASURED_SOURCES = frozenset({"pdu_energy", "pdu_power"})


def choose_power(*, outlet_w: float | None, miner_w: float | None,
                 nominal_w: float | None) -> tuple[float | None, PowerSource | None]:
    """The best power figure and its source: outlet, then miner (only when positive), then
    nominal; (None, None) when nothing is known (unknown stays null, never 0)."""
    if outlet_w is not None:
        return float(outlet_w), "pdu"
    if miner_w is not None and miner_w > 0:
        return float(miner_w), "miner"
    if nominal_w is not None:
        return float(nominal_w), "nominal"
    return None, None


def ledger_source(power_source: str) -> str:
    """The ledger's name for a reading's power_source (a rig reading whose power came from its
    outlet is a measurement: pdu_power)."""
    return "pdu_power" if power_source == "pdu" else power_source
