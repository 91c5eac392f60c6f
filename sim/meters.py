"""A simulated Modbus TCP power meter: a real pymodbus server holding a register map's values."""

from __future__ import annotations

import struct
import warnings
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import ModbusTcpServer

from collector.meters.registers import FORMAT, WIDTH, RegisterMap

SPACE = 4096  # registers per table: enough for every shipped map


def encode(rmap: RegisterMap, values: dict[int, float]) -> list[int]:
    """Register words holding raw values at the given addresses, typed as the map says."""
    types = {r.address: r.type for r in rmap.registers()}
    words = [0] * SPACE
    for address, value in values.items():
        kind = types.get(address, "float32")
        raw = value if kind == "float32" else int(value)
        packed = struct.pack(FORMAT[kind], raw)
        parts = list(struct.unpack(f">{WIDTH[kind]}H", packed))
        if rmap.word_order == "little":
            parts.reverse()
        words[address:address + len(parts)] = parts
    return words


def read_limit(max_registers: int) -> Any:
    """A device action refusing a read of more registers than the meter answers at once,
    with the exception code a real meter gives (ILLEGAL DATA VALUE)."""

    async def action(function_code: int, start_address: int, address: int, count: int,
                     current_registers: list[int], set_values: Any) -> ExcCodes | None:
        return ExcCodes.ILLEGAL_VALUE if count > max_registers else None

    return action


def meter_server(rmap: RegisterMap, values: dict[int, float], host: str, port: int,
                 unit_id: int = 1, max_registers: int | None = None) -> ModbusTcpServer:
    """A Modbus TCP server answering for unit_id with the given raw register values; with
    max_registers, longer reads are refused as the meter refuses them."""
    return word_server(rmap.function, encode(rmap, values), host, port, unit_id=unit_id,
                       max_registers=max_registers)


def word_server(function: str, words: list[int], host: str, port: int, unit_id: int = 1,
                max_registers: int | None = None) -> ModbusTcpServer:
    """A Modbus TCP server holding these 16-bit words from protocol address 0, as input
    (function 04) or holding (03) registers: a meter's registers written as its vendor's table
    gives them, no register map involved."""
    # pymodbus' data blocks count from 1: block address 1 is protocol address 0
    block = ModbusSequentialDataBlock(1, words)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymodbus 3.x announces its 4.0 datastore
        device = (ModbusDeviceContext(ir=block) if function == "input"
                  else ModbusDeviceContext(hr=block))
    if max_registers is not None:
        device.simdevice.action = read_limit(max_registers)
    context = ModbusServerContext(devices={unit_id: device}, single=False)
    return ModbusTcpServer(context, address=(host, port))
