"""Real replies this project's reference captures do not have, vendored with attribution from
permissively licensed upstream repositories (tests/cases/rigs/<family>/<case>/: SOURCE,
replies.json, expected.toml with every number derived by hand). Each is served by a
cgminer-style peer in 1460-byte segments and read twice: by the collector's fast path and by
pyasic's own `get_data` for the same pyasic class (the fallback), both mapped to the stored
reading; where pyasic 0.79 differs, `[pyasic]` in the case says why."""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.mapping import Origin, reading_from_miner
from collector.rigs.credentials import DEFAULT
from collector.rigs.registry import fast_path_for
from collector.rigs.source import FIELDS
from exporters.decode import rig_points
from hashwatt.config import RigConfig
from hashwatt.contract import RigReading
from sim.replay import Capture, ReplayFarm, _btminer_joinable, reference_dir
from tests.conftest import next_octet
from tests.test_replay import BOARD_KEYS, RIG_KEYS, expected, poll

CASES = Path(__file__).parent / "cases" / "rigs"
UPSTREAM = sorted(p.parent for p in CASES.glob("*/*/expected.toml"))
SEGMENT = 1460


def replies_for(folder: Path) -> dict[str, Any]:
    """The case's replies: vendored in replies.json, or read at test time from
    ../shared/reference/miner-api (`[reference]`: command = path there; never copied)."""
    if (folder / "replies.json").exists():
        return dict(json.loads((folder / "replies.json").read_text()))
    ref = reference_dir()
    assert ref is not None, "../shared/reference/miner-api is missing"
    spec = tomllib.loads((folder / "expected.toml").read_text())
    return {cmd: json.loads((ref / path).read_text()) for cmd, path in spec["reference"].items()}


def answer(replies: dict[str, Any], request: bytes) -> bytes:
    """cgminer's answer to one request: a reply, a joined reply (each command's reply in a
    list under its name, api.c), or its error for a command the case does not have."""
    try:
        doc = json.loads(request.decode())
        command = str(doc.get("command", doc.get("cmd", "")))
    except ValueError:
        command = ""
    parts = command.split("+")
    if len(parts) > 1 and all(p in replies for p in parts):
        return json.dumps({p: [replies[p]] for p in parts}).encode() + b"\x00"
    if command in replies:
        return json.dumps(replies[command]).encode() + b"\x00"
    return json.dumps({"STATUS": [{"STATUS": "E", "When": 0, "Code": 14,
                                   "Msg": "Invalid command", "Description": ""}],
                       "id": 1}).encode() + b"\x00"


async def cgminer_peer(ip: str, replies: dict[str, Any]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = answer(replies, await reader.read(65536))
        for i in range(0, len(body), SEGMENT):
            writer.write(body[i:i + SEGMENT])
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.close()

    return await asyncio.start_server(handle, ip, 0)


def miner_class(spec: dict[str, Any]) -> Any:
    """The pyasic class the case names; "MINER_CLASSES" is the class pyasic's factory
    builds for a stock Antminer model missing from its table (AntminerUnknown)."""
    module, name = spec["model"].split(":")
    found = getattr(importlib.import_module(module), name)
    if name == "MINER_CLASSES":
        from pyasic.miners.factory import MinerTypes
        return found[MinerTypes.ANTMINER][None]
    return found


def read(folder: Path, fast: bool) -> dict[str, Any]:
    """One poll of the case's replies, by the fast path or by pyasic, as a stored reading.
    The peer listens on an address of its own: pyasic's web requests there are refused."""
    spec = tomllib.loads((folder / "expected.toml").read_text())
    ip = f"127.{next_octet()}.7.7"

    async def run() -> Any:
        server = await cgminer_peer(ip, replies_for(folder))
        async with server:
            port = server.sockets[0].getsockname()[1]
            miner = miner_class(spec)(ip)
            if not fast:
                miner.rpc.port = port
                return await asyncio.wait_for(miner.get_data(include=FIELDS), 30)
            path = fast_path_for(miner, 5.0, DEFAULT)
            assert type(path).__name__ == spec["path"]
            path.session.port = port  # type: ignore[union-attr]
            if hasattr(path, "skip_web"):  # stock Antminer errors are a web API: not served
                path.skip_web = 1
            try:
                return await path.telemetry()  # type: ignore[union-attr]
            finally:
                await path.close()  # type: ignore[union-attr]

    data = asyncio.run(run())
    origin = Origin(site="north", collector="c1", rig=RigConfig(id="rig-1", address=ip),
                    ts_ms=1_790_000_000_000)
    return reading_from_miner(origin, data)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "pyasic"])
@pytest.mark.parametrize("folder", UPSTREAM, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_upstream_reply_is_stored_with_the_values_derived_by_hand(folder: Path,
                                                                      fast: bool) -> None:
    spec = tomllib.loads((folder / "expected.toml").read_text())
    want, want_boards = expected(spec, fast)
    reading = read(folder, fast)
    got = {k: reading[k] for k in RIG_KEYS}
    got["boards_ok"] = rig_points(RigReading.model_validate(reading))[0].fields.get("boards_ok")
    assert got == {k: want[k] for k in (*RIG_KEYS, "boards_ok")}
    assert [{k: b[k] for k in BOARD_KEYS} for b in reading["boards"]] == want_boards


def test_every_upstream_case_names_its_source() -> None:
    for folder in UPSTREAM:
        if not (folder / "replies.json").exists():  # read from ../shared: named there
            continue
        source = (folder / "SOURCE").read_text()
        for word in ("repository:", "path:", "commit:", "Apache-2.0"):
            assert word in source, (folder, word)


# --- through the replay server: identified by unmodified pyasic, then polled -------------

REPLAYED = [f for f in UPSTREAM
            if "replay" in tomllib.loads((f / "expected.toml").read_text())]


def _capture(folder: Path) -> Capture:
    """A replay Capture for a vendored case, from its `[replay]` table (the firmware's
    protocol options; every reply comes from replies.json)."""
    spec = tomllib.loads((folder / "expected.toml").read_text())
    opts = spec["replay"]
    joinable = {"all": (lambda c: True), "btminer": _btminer_joinable, "none": None}
    return Capture(f"{folder.parent.name}/{folder.name}", "",
                   rpc={c: c for c in replies_for(folder)},
                   joinable=joinable[opts.get("joinable", "none")],
                   rpc_error=opts.get("rpc_error", "cgminer"),
                   luci_redirect=opts.get("luci_redirect", False),
                   digest_realm=opts.get("digest_realm"),
                   bundle=folder / "replies.json")


@pytest.fixture(scope="module")
def replay_upstream() -> Iterator[ReplayFarm]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    captures = tuple(_capture(f) for f in REPLAYED)
    farm = ReplayFarm(base=f"127.{next_octet()}.249", extra=captures,
                      names=tuple(c.name for c in captures))
    asyncio.run_coroutine_threadsafe(farm.start(), loop).result(30)
    yield farm
    asyncio.run_coroutine_threadsafe(farm.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "pyasic"])
@pytest.mark.parametrize("folder", REPLAYED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_replayable_upstream_reply_is_identified_by_pyasic_and_stored_exactly(
        replay_upstream: ReplayFarm, folder: Path, fast: bool) -> None:
    spec = tomllib.loads((folder / "expected.toml").read_text())
    want, want_boards = expected(spec, fast)
    reading = poll(replay_upstream.rig(f"{folder.parent.name}/{folder.name}").ip, fast)
    got = {k: reading[k] for k in RIG_KEYS}
    got["boards_ok"] = rig_points(RigReading.model_validate(reading))[0].fields.get("boards_ok")
    assert got == {k: want[k] for k in (*RIG_KEYS, "boards_ok")}
    assert [{k: b[k] for k in BOARD_KEYS} for b in reading["boards"]] == want_boards
