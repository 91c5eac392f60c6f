"""The Modbus TCP meter source: one poll = one reading in the PDU contract (no outlets)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import cast

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from collector.meters.registers import RegisterMap, Values, builtin_maps, decode
from hashwatt.config import Config, MeterConfig
from hashwatt.contract import PduDoc, PhaseDoc, pdu_doc
from hashwatt.errors import MeterError
from hashwatt.payloads import DeviceValues, PhaseValues

log = logging.getLogger(__name__)
# an energy register shown with the M prefix (Eastron SDM630MCT set to MWh) counts MWh
ENERGY_PREFIX = {"k": 1.0, "M": 1000.0}
# magnitudes: a negative one is no measurement (power alone is signed: its direction)
NON_NEGATIVE = ("energy_kwh", "voltage_v", "current_a")


def _values(group: Values, words: dict[int, int], rmap: RegisterMap, word_order: str,
            energy_scale: float) -> dict[str, float]:
    out = {}
    for key, register in group.__dict__.items():
        if key != "phase" and register is not None:
            scale = energy_scale if key == "energy_kwh" else 1.0
            value = decode(register, words, word_order, scale, rmap.not_available)
            if value is not None and key in NON_NEGATIVE and value < 0:
                log.debug("meter register %d: %s %s is negative: left out", register.address,
                          key, value)
                value = None
            if value is not None:
                out[key] = value
    return out


def _total_current(phases: list[PhaseDoc]) -> float | None:
    """The sum of the line currents; unknown when any phase's current is."""
    currents = [p.get("current_a") for p in phases]
    if not currents or any(c is None for c in currents):
        return None
    return round(sum(float(c) for c in currents if c is not None), 6)


def _phase(name: str, values: dict[str, float]) -> PhaseDoc:
    """One phase; the values' keys are the map's register names (MeterPhase: typed by
    PhaseValues, tests/test_contract_payloads.py)."""
    phase: PhaseDoc = {"phase": name}
    phase.update(cast(PhaseValues, values))
    return phase


@dataclass
class MeterSource:
    """Polls Modbus TCP meters, keeping one connection per meter."""

    cfg: Config
    clients: dict[str, AsyncModbusTcpClient] = field(default_factory=dict)
    energy: dict[str, float] = field(default_factory=dict)

    def register_map(self, meter: MeterConfig) -> RegisterMap:
        """The meter's register map."""
        maps = builtin_maps()
        if meter.map not in maps:
            raise MeterError(f"unknown register map {meter.map!r}; known: "
                             f"{', '.join(sorted(maps))}")
        return maps[meter.map]

    async def _client(self, meter: MeterConfig) -> AsyncModbusTcpClient:
        client = self.clients.get(meter.id)
        if client is None:
            client = AsyncModbusTcpClient(meter.address, port=meter.port,
                                          timeout=meter.timeout_s, retries=0)
            self.clients[meter.id] = client
        if not client.connected and not await client.connect():
            raise MeterError(f"{meter.address}:{meter.port}: cannot connect")
        return client

    async def read_words(self, meter: MeterConfig, rmap: RegisterMap) -> dict[int, int]:
        """Every register of the map, read in as few requests as the map allows."""
        client = await self._client(meter)
        read = (client.read_input_registers if rmap.function == "input"
                else client.read_holding_registers)
        words: dict[int, int] = {}
        for start, count in rmap.blocks():
            reply = await read(start, count=count, device_id=meter.unit_id)
            if reply.isError():
                raise MeterError(f"{meter.address}:{meter.port} unit {meter.unit_id}: "
                                 f"registers {start}+{count}: {reply}")
            words.update(enumerate(reply.registers, start))
        return words

    async def _read_reconnecting(self, meter: MeterConfig, rmap: RegisterMap) -> dict[int, int]:
        """Gateways drop idle connections: one retry on a fresh connection."""
        try:
            return await self.read_words(meter, rmap)
        except (ModbusException, OSError):
            self._drop(meter.id)
            return await self.read_words(meter, rmap)
        except MeterError:
            self._drop(meter.id)
            raise

    def _drop(self, meter_id: str) -> None:
        client = self.clients.pop(meter_id, None)
        if client is not None:
            client.close()

    async def poll(self, meter: MeterConfig, ts_ms: int) -> PduDoc:
        """Read one meter; errors give an offline reading with the reason."""
        doc = pdu_doc(ts_ms=ts_ms, site=self.cfg.site.name, pdu=meter.id,
                      collector=self.cfg.collector.id, rack=meter.rack, online=False)
        try:
            rmap = self.register_map(meter)
            words = await self._read_reconnecting(meter, rmap)
        except (MeterError, ModbusException, OSError) as exc:
            doc["error"] = str(exc)[:500]
            return doc
        energy_scale = ENERGY_PREFIX[meter.energy_prefix]
        # a Modbus gateway that swaps the two words of 32-bit values: set on the meter
        order = meter.word_order or rmap.word_order
        device = _values(rmap.device, words, rmap, order, energy_scale)
        phases = [_phase(p.phase, _values(p, words, rmap, order, energy_scale))
                  for p in rmap.phases]
        if rmap.current_from_phases:
            total = _total_current(phases)
            device.pop("current_a", None)
            if total is not None:
                device["current_a"] = total
        previous = self.energy.get(meter.id)
        if "energy_kwh" in device:
            self.energy[meter.id] = device["energy_kwh"]
        reset = previous is not None and device.get("energy_kwh", previous) < previous
        doc.update({"online": True, "error": None, "vendor": rmap.vendor, "model": rmap.model,
                    "profile": rmap.name, **cast(DeviceValues, device), "energy_reset": reset,
                    "phases": phases, "outlets": []})
        return doc

    async def close(self) -> None:
        """Close every connection."""
        for client in self.clients.values():
            client.close()
        self.clients.clear()
