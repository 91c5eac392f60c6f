"""The fast paths' RPC reads against a real TCP peer on loopback: replies in LAN-sized
segments read to EOF, firmware JSON repaired by pyasic's own `_load_api_data`, joined
commands learned per rig, and one clear reason when identification fails."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from collector.rigs.base import FastPathError, RpcSession, rpc, sensor_values
from collector.rigs.source import PyasicSource

Reply = Callable[[str], bytes]


async def serve(reply: Reply, segment: int = 1460, gap: float = 0.002) -> asyncio.Server:
    """A cgminer-style peer: one request, the reply in segments with gaps, then close."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = json.loads((await reader.read(65536)).decode())
        body = reply(request["command"])
        for i in range(0, len(body), segment):
            writer.write(body[i:i + segment])
            await writer.drain()
            await asyncio.sleep(gap)
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def test_a_reply_of_many_segments_is_read_whole() -> None:
    big = {"STATS": [{"k": "x" * 20_000}], "id": 1}

    async def run() -> dict:
        server = await serve(lambda cmd: json.dumps(big).encode() + b"\x00")
        async with server:
            return await rpc("127.0.0.1", "stats", 5.0, port(server))

    assert asyncio.run(run()) == big


@pytest.mark.parametrize("raw, expected", [
    (b'{"a": 1,}\x00', {"a": 1}),                                   # btminer trailing comma
    (b'{"S": [{"a": 1}{"b": 2}]}', {"S": [{"a": 1}, {"b": 2}]}),     # bmminer glue
    (b'{"T": "inf", "U": "nan"}', {"T": 0, "U": 0}),                 # Avalon inf/nan
    (b',"id":1}', {"id": 1}),                                       # Avalon leading comma
])
def test_firmware_json_quirks_are_repaired_as_pyasic_repairs_them(raw: bytes,
                                                                  expected: dict) -> None:
    async def run() -> dict:
        server = await serve(lambda cmd: raw)
        async with server:
            return await rpc("127.0.0.1", "x", 5.0, port(server))

    assert asyncio.run(run()) == expected


def test_garbage_is_one_clear_error() -> None:
    async def run() -> None:
        server = await serve(lambda cmd: b"\xff\xfeERR <html>")
        async with server:
            await rpc("127.0.0.1", "summary", 5.0, port(server))

    with pytest.raises(FastPathError, match="malformed reply to summary"):
        asyncio.run(run())


def test_a_rig_that_refuses_joined_commands_is_asked_one_by_one_from_then_on() -> None:
    seen: list[str] = []

    def reply(cmd: str) -> bytes:
        seen.append(cmd)
        if "+" in cmd:  # stock S19: joined commands are refused
            return b'{"STATUS":[{"STATUS":"E","Code":14,"Msg":"Invalid command"}],"id":1}\x00'
        return json.dumps({"STATUS": [{"STATUS": "S"}], cmd.upper(): [{"n": cmd}]}).encode()

    async def run() -> tuple[dict, dict, bool | None]:
        server = await serve(reply)
        async with server:
            session = RpcSession("127.0.0.1", 5.0, port(server))
            first = await session.many("stats", "summary")
            second = await session.many("stats", "summary")
            return first, second, session.joined

    first, second, joined = asyncio.run(run())
    assert first == second and first["summary"]["SUMMARY"] == [{"n": "summary"}]
    assert joined is False
    assert seen.count("stats+summary") == 1 and seen.count("stats") == 2


def test_sensor_strings_keep_negative_temperatures() -> None:
    # "2--1-20-22": the separator is "-" and so is the sign of the second sensor
    assert sensor_values("2--1-20-22") == [2.0, -1.0, 20.0, 22.0]
    assert sensor_values("78-50-69-70") == [78.0, 50.0, 69.0, 70.0]
    assert sensor_values("-3-4-5-6") == [-3.0, 4.0, 5.0, 6.0]
    assert sensor_values("") == [] and sensor_values(64) == [64.0]


class _Raising:
    async def get_miner(self, ip: str) -> None:
        raise TypeError("string indices must be integers, not 'str'")


def test_an_identification_that_raises_is_one_reason_not_a_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    from collector.mapping import Origin
    from hashwatt.config import RigConfig

    source = PyasicSource(factory=_Raising())  # type: ignore[arg-type]
    origin = Origin(site="north", collector="c1", rig=RigConfig(id="r1", address="127.0.0.1"),
                    ts_ms=1)
    readings = [asyncio.run(source.poll(origin)) for _ in range(2)]
    assert readings[0]["online"] is False
    assert readings[0]["error"] == ("identification: TypeError: string indices must be "
                                    "integers, not 'str'")
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # once, not every cycle
    assert "Traceback" not in caplog.text


def test_an_endless_rpc_reply_stops_identification_before_pyasic() -> None:
    """A rig streaming forever on 4028 (pyasic's `_socket_ping` reads `version` to EOF): the
    probe stops at 1 MB and gives the reason; pyasic's factory is never asked."""
    import os

    from collector.rigs.probe import oversize
    from collector.rigs.registry import HostileReply
    from collector.rigs.registry import identify as identify_rig

    ip = f"127.252.{os.getpid() % 250}.1"

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(100)
            while True:
                writer.write(b"{" * 65536)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    class _Never:
        async def get_miner(self, ip: str) -> None:
            raise AssertionError("pyasic was asked")

    async def drill() -> tuple[str | None, str]:
        server = await asyncio.start_server(endless, ip, 4028)
        try:
            reason = await oversize(ip, 2.0)
            with pytest.raises(HostileReply) as raised:
                await identify_rig(ip, 2.0, _Never())
            return reason, str(raised.value)
        finally:
            server.close()

    reason, raised = asyncio.run(drill())
    # gather keeps the order of the probes: the web page (refused here), version, devdetails
    assert reason == raised == "reply over 1 MB on port 4028 (version): not a miner?"
