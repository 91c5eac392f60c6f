"""What a frozen simulated rig must look like once it reaches InfluxDB.

Computed from the simulator's own model (the same seed, tick 0), with the interpretation
pyasic applies per firmware family spelled out where it differs.
"""

from __future__ import annotations

from typing import Any

from sim.model import SimRig, snapshot


def expected_rig(rig: SimRig, seed: int) -> dict[str, Any]:
    """The `rig` point fields for a rig in a healthy (or overheat / dead-fan) state."""
    s = snapshot(rig, seed, 0)
    kind = rig.hardware.kind
    hashrate = round(s.hashrate_gh / 1000, 6)
    # stock Antminer firmware reports no wattage: the nominal figure is used
    power, source = ((float(rig.info.nominal_w), "nominal") if kind == "antminer"
                     else (float(s.power_w), "miner"))
    fans = s.fans_rpm if kind != "whatsminer" else [s.fans_rpm[0], s.fans_rpm[-1]]
    live = [b for b in s.boards if b.chips]
    # the hottest sensor: Whatsminer reports each board's Chip Temp Max (the simulator: +4)
    hottest = max(b.chip_temp_c for b in live) + (4 if kind == "whatsminer" else 0)
    return {
        "online": True,
        "hashrate_ths": hashrate,
        "expected_hashrate_ths": round(s.expected_gh / 1000, 6),
        "power_w": power,
        "power_source": source,
        "efficiency_j_th": round(power / hashrate, 3),
        "temp_max_c": hottest,
        "temp_limit_c": rig.info.temp_limit_c,
        "nominal_efficiency_j_th": round(rig.info.nominal_w / rig.info.nominal_ths, 3),
        "up": 1,
        "temp_margin_c": round(rig.info.temp_limit_c - hottest, 3),
        "fan_min_rpm": min(fans),
        "boards_ok": len(live),
        "boards_total": rig.hardware.boards,
        "uptime_s": s.uptime_s,
        "model": rig.hardware.model,
    }


def expected_boards(rig: SimRig, seed: int) -> dict[str, dict[str, float | None]]:
    """The `rig_board` fields per board index."""
    s = snapshot(rig, seed, 0)
    out = {}
    for b in s.boards:
        if not b.chips:
            continue
        # Avalon's MM ID0 has no board (PCB) sensor: unknown (pyasic copies MTmax into it)
        board_temp = None if rig.hardware.kind == "avalon" else b.board_temp_c
        chip_temp: float | None = b.chip_temp_c
        if rig.hardware.kind == "antminer":
            # a stock Antminer chain reports four sensors, "c-(c-28)-(c-9)-(c-8)" (the spread
            # of the real S19 Pro capture); a board's figure is the mean of the non-zero ones
            chip_temp, board_temp = _mean_of_four(b.chip_temp_c), _mean_of_four(b.board_temp_c)
        out[str(b.index)] = {"hashrate_ths": round(b.hashrate_gh / 1000, 6),
                             "chip_temp_c": chip_temp, "board_temp_c": board_temp,
                             "chips": b.chips}
    return out


def _mean_of_four(hottest: float) -> float:
    sensors = [v for v in (hottest, hottest - 28, hottest - 9, hottest - 8) if v]
    return sum(sensors) / len(sensors)
