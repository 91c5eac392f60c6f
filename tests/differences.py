"""Where hashwatt's reading differs from pyasic 0.79's on purpose, per fast path, and why.
The differential tests compare everything else exactly; the replay tests assert these keys
against numbers derived by hand from the captures."""

from __future__ import annotations

import copy
from typing import Any

DOCUMENTED: dict[str, dict[str, str]] = {
    "AntminerPath": {
        "temp_max_c": "the hottest of the four chip sensors per chain; pyasic has no per-sensor "
                      "figure (its web parser averages them, its plain-RPC parser takes temp{n})",
        "boards.chip_temp_c": "mean of the non-zero temp_chip sensors; pyasic's plain-RPC "
                              "parser (BMMiner._get_hashboards) reads temp{n}, a PCB sensor",
        "boards.board_temp_c": "mean of the non-zero temp_pcb sensors; pyasic's plain-RPC "
                               "parser reads temp2_{n}, a chip sensor (chip and board swapped)",
        "boards.hashrate_ths": "from RPC chain_rate{n}; pyasic's AntminerModern reads boards "
                               "only from the web API's stats.cgi",
        "boards.chips": "from RPC chain_acn{n} (see boards.hashrate_ths)",
        "errors": "an unreadable summary.cgi (absent, login refused) is unknown (null); "
                  "pyasic reports an empty list",
    },
    "WhatsminerPath": {
        "temp_max_c": "the firmware's Chip Temp Max; pyasic has only the rounded average",
        "boards.chip_temp_c": "Chip Temp Avg as reported; pyasic rounds to whole degrees",
        "boards.board_temp_c": "Temperature as reported; pyasic rounds to whole degrees",
        "hashrate_ths": "MHS 1m, else HS RT (firmware without MHS 1m); pyasic reads MHS 1m only",
        "boards.hashrate_ths": "MHS 1m, else the current total shared out by MHS av",
        "boards.chips": "Effective Chips as reported; pyasic's devs loop stops at the first "
                        "board without MHS 1m, before it reads Effective Chips",
        "boards": "a model pyasic cannot name (no devdetails) gets no boards from pyasic; "
                  "hashwatt reads the boards devs lists",
        "fans_rpm": "likewise: pyasic expects no fans for an unknown model",
        "boards_total": "unknown either way (None); listed with boards",
    },
    "AvalonPath": {
        "hashrate_ths": "pyasic's MinerData replaces a rig figure of 0 (idle) by the sum of "
                        "the boards' MGHS, the average since start (idle Avalon Q: 44.5 TH/s)",
        "boards.hashrate_ths": "MGHS is the average since start: the current GHSspd is shared "
                               "out by it (an idle rig's boards read 0; pyasic reads history)",
        "boards.board_temp_c": "no board sensor in MM ID0: unknown; pyasic copies MTmax",
        "env_temp_c": "Temp, else ITemp (Avalon Q); pyasic reads Temp only",
        "power_w": "WALLPOWER, else PS[4] (Avalon Q); pyasic reads WALLPOWER only",
        "power_source": "follows power_w",
        "errors": "not read (the RPC has no error list): unknown (null); pyasic reports []",
    },
    "LuxosPath": {
        "temp_max_c": "the hottest exhaust sensor; pyasic has only each board's mean",
        "hashrate_ths": "summary GHS 5s; pyasic 0.79's LUXMiner._get_hashrate returns None "
                        "before reading it, and MinerData sums the boards' since-start rates",
        "boards.hashrate_ths": "devs' MHS 5s per ASC (current); pyasic reads chain_rate{n}, "
                               "the average since start",
        "boards.chip_temp_c": "pyasic's board loop stops at the first board without sensors "
                              "(IndexError on a lost chain): the boards after it stay unknown",
        "boards.board_temp_c": "likewise",
        "boards.chips": "likewise",
        "errors": "not read: unknown (null); pyasic reports []",
    },
    "EpicPath": {
        "power_w": "Input Power to the milliwatt; pyasic rounds to whole watts",
        "boards.hashrate_ths": "a board HBStatus lists as detected but not enabled hashes 0; "
                               "pyasic leaves it unknown",
        "boards.board_temp_c": "Temperature as reported; pyasic truncates it to an integer",
        "boards.chips": "unknown: capabilities' Chip Count is the model's count, not working "
                        "chips (pyasic reports it)",
    },
    "WhatsminerV3Path": {
        "hashrate_ths": "hash-realtime; pyasic's MinerData sums the boards' hash-average "
                        "(the average since start)",
        "temp_max_c": "the hottest chip-temp-max; pyasic has no chip figure",
        "boards.hashrate_ths": "hash-realtime; pyasic reads hash-average (since start)",
        "boards.chip_temp_c": "chip-temp-avg; pyasic has none",
        "boards.board_temp_c": "summary board-temperature; pyasic takes chip-temp-min",
    },
    "BitaxePath": {
        "power_w": "AxeOS watts to the milliwatt; pyasic rounds to whole watts",
        "errors": "AxeOS has no error list: unknown (null); pyasic reports []",
    },
}


def without_documented(reading: dict[str, Any], kind: str) -> dict[str, Any]:
    """The reading with the documented keys blanked, for an exact comparison of the rest."""
    out = copy.deepcopy(reading)
    for key in DOCUMENTED.get(kind, {}):
        if key in ("boards", "fans_rpm"):
            out[key] = []
        elif key.startswith("boards."):
            for board in out.get("boards", []):
                board[key.split(".", 1)[1]] = None
        else:
            out[key] = None
    out["error"] = None  # a fast-path note is not data
    return out
