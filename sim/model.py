"""The physics of a simulated rig: a deterministic function of (seed, rig, time tick).

Tests import `snapshot()` to know exactly what the simulated farm serves.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from enum import StrEnum

from hashwatt.models import ModelInfo, lookup


class Scenario(StrEnum):
    """Behaviours that can be switched on per rig."""

    NORMAL = "normal"
    OVERHEAT = "overheat"
    DEAD_FAN = "dead_fan"
    DEAD_BOARD = "dead_board"
    OFFLINE = "offline"
    HUNG = "hung"
    # hashing nothing (soft off, pool lost, curtailed) while the since-start average stays
    IDLE = "idle"
    # malformed replies of the kinds real firmware sends
    NULL_BYTES = "null_bytes"
    GLUED = "glued"
    TRUNCATED = "truncated"
    GARBAGE = "garbage"
    TRICKLE = "trickle"


@dataclass(frozen=True)
class Hardware:
    """What a simulated model looks like on the wire."""

    kind: str  # the firmware family: a key of sim.vendors.VENDORS
    model: str  # pyasic raw model name, the key of models.toml
    boards: int
    chips: int
    fans: int
    wire_model: str = ""  # the model as the firmware spells it, when it differs


HARDWARE: dict[str, Hardware] = {
    "s19pro": Hardware("antminer", "S19 Pro", boards=3, chips=114, fans=4),
    "s21": Hardware("antminer", "S21", boards=3, chips=108, fans=4),
    "m50": Hardware("whatsminer", "M50 VH50", boards=3, chips=105, fans=2),
    "m30splus": Hardware("whatsminer", "M30S+ VE40", boards=3, chips=156, fans=2),
    "a1246": Hardware("avalon", "Avalon 1246", boards=3, chips=120, fans=4),
    "supra": Hardware("bitaxe", "Supra", boards=1, chips=1, fans=1),
    "gamma": Hardware("bitaxe", "Gamma", boards=1, chips=1, fans=1),
    # families added for issue 11: what sites run beside stock firmware
    "avalonq": Hardware("avalon", "Avalon Q Home", boards=1, chips=160, fans=2,
                        wire_model="Q"),
    "m60s": Hardware("whatsminer3", "M60S VK40", boards=3, chips=75, fans=2,
                     wire_model="M60S_VK40"),
    "luxos": Hardware("luxos", "S19k Pro", boards=3, chips=77, fans=4),
    "vnish": Hardware("vnish", "S21+", boards=3, chips=108, fans=4),
    "epic": Hardware("epic", "S19 XP", boards=3, chips=110, fans=4),
    "bosplus": Hardware("braiins", "S19j Pro", boards=3, chips=126, fans=4),
    "at2880": Hardware("auradine", "AT2880", boards=3, chips=132, fans=4),
}


@dataclass(frozen=True)
class SimRig:
    """One simulated rig: where it listens, what it is and how it behaves."""

    rig_id: str
    ip: str
    hw_name: str
    scenario: Scenario = Scenario.NORMAL
    ambient_c: float = 25.0

    @property
    def hardware(self) -> Hardware:
        """The simulated hardware profile."""
        return HARDWARE[self.hw_name]

    @property
    def info(self) -> ModelInfo:
        """The nominal model figures."""
        info = lookup(self.hardware.model)
        assert info is not None, self.hardware.model
        return info


@dataclass(frozen=True)
class Board:
    """One hashboard's readings."""

    index: int
    hashrate_gh: float
    chip_temp_c: float
    board_temp_c: float
    chips: int
    serial: str

    @property
    def chip_sensors(self) -> tuple[float, float, float, float]:
        """Four chip sensors as stock Antminer chains report them (hottest first; the second
        sits at the cold air inlet: `"temp_chip1": "78-50-69-70"` in a real S19 Pro's stats)."""
        return _four(self.chip_temp_c) if self.chips else (0.0, 0.0, 0.0, 0.0)

    @property
    def pcb_sensors(self) -> tuple[float, float, float, float]:
        """Four board sensors, shaped like the chip sensors (`"temp_pcb1": "73-45-64-65"`)."""
        return _four(self.board_temp_c) if self.chips else (0.0, 0.0, 0.0, 0.0)


def _four(hottest: float) -> tuple[float, float, float, float]:
    """The real S19 Pro capture's spread: hottest, inlet 28 below, then 9 and 8 below."""
    return (hottest, hottest - 28, hottest - 9, hottest - 8)


@dataclass(frozen=True)
class Snapshot:
    """Everything a rig reports at one tick."""

    rig: SimRig
    tick: int
    boards: list[Board]
    fans_rpm: list[int]
    power_w: int
    uptime_s: int
    expected_gh: float
    errors: list[str] = field(default_factory=list)

    @property
    def hashrate_gh(self) -> float:
        """Total hashrate, the sum of the boards as the firmware reports it."""
        return round(sum(b.hashrate_gh for b in self.boards), 2)

    @property
    def idle(self) -> bool:
        """Hashing nothing while powered (the since-start average stays up)."""
        return self.rig.scenario is Scenario.IDLE

    @property
    def average_gh(self) -> float:
        """The since-start average (cgminer's `MHS av`): what the rig did before it idled."""
        return round(self.expected_gh * 0.995, 2) if self.idle else self.hashrate_gh

    @property
    def chip_temp_max_c(self) -> float:
        """Hottest board's chip temperature."""
        return max(b.chip_temp_c for b in self.boards)


def tick_of(now: float, tick_s: float, frozen: bool) -> int:
    """The time tick that selects a snapshot; frozen farms stay at tick 0."""
    return 0 if frozen else int(now // tick_s)


def _board(rig: SimRig, rng: random.Random, index: int, dead: bool, heat: float) -> Board:
    hw = rig.hardware
    per_board = rig.info.nominal_ths * 1000 / hw.boards
    load = 0.0 if dead else 1.0 + rng.gauss(0, 0.01)
    if rig.scenario is Scenario.IDLE:
        # boards present and counted, chips cool to ambient, nothing hashed
        pcb = rig.ambient_c + 2 + rng.gauss(0, 0.5)
        return Board(index=index, hashrate_gh=0.0, chip_temp_c=float(round(pcb)),
                     board_temp_c=float(round(pcb)), chips=hw.chips,
                     serial=f"SIM{zlib.crc32(rig.rig_id.encode()):010d}B{index}")
    # a healthy rig runs 25 °C under its model's chip limit at 25 °C ambient (an S19's 70 °C
    # for its 95 °C limit, a Bitaxe's 45 °C for its 70 °C): without this offset every
    # healthy Bitaxe sat at its limit and an overheating Avalon (limit 100) stayed under it
    offset = rig.info.temp_limit_c - 95.0
    chip = rig.ambient_c + 45 * load + heat + offset + rng.gauss(0, 0.5)
    pcb = rig.ambient_c + 33 * load + heat * 0.8 + offset + rng.gauss(0, 0.5)
    return Board(
        index=index,
        hashrate_gh=round(per_board * load, 2),
        chip_temp_c=float(round(chip)) if not dead else 0.0,
        board_temp_c=float(round(pcb)) if not dead else 0.0,
        chips=0 if dead else hw.chips,
        serial=f"SIM{zlib.crc32(rig.rig_id.encode()):010d}B{index}",
    )


def snapshot(rig: SimRig, seed: int, tick: int) -> Snapshot:
    """The readings of rig at tick, the same for the same (seed, rig, tick)."""
    rng = random.Random(f"{seed}/{rig.rig_id}/{tick}")
    heat = {Scenario.OVERHEAT: 28.0, Scenario.DEAD_FAN: 12.0}.get(rig.scenario, 0.0)
    dead_board = 1 if rig.scenario is Scenario.DEAD_BOARD and rig.hardware.boards > 1 else -1
    boards = [_board(rig, rng, i, i == dead_board, heat) for i in range(rig.hardware.boards)]
    share = sum(1 for b in boards if b.chips) / len(boards)
    hot = max(b.chip_temp_c for b in boards)
    fan = int(min(6600, max(2400, 3000 + 60 * (hot - 55))) // 10 * 10)
    fans = [fan + 30 * i for i in range(rig.hardware.fans)]
    if rig.scenario is Scenario.DEAD_FAN:
        fans[0] = 0
    power = round(rig.info.nominal_w * share * (1 + rng.gauss(0, 0.005)))
    if rig.scenario is Scenario.IDLE:
        fans = [0] * rig.hardware.fans  # a soft-off rig stops its fans (Avalon Q: Fan1[0])
        power = round(rig.info.nominal_w * 0.02)  # control board and PSU standby
    boot_rng = random.Random(f"{seed}/{rig.rig_id}/boot")
    uptime = boot_rng.randint(3_600, 900_000) + tick * 10
    errors = ["chain 1 lost"] if dead_board >= 0 else []
    return Snapshot(rig=rig, tick=tick, boards=boards, fans_rpm=fans, power_w=power,
                    uptime_s=uptime, expected_gh=rig.info.nominal_ths * 1000, errors=errors)
