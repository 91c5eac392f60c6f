"""Logs people read and reasons they can act on: hung vs dead vs login refused, one line per
cycle, state changes only, broker lost and regained, library noise off (real farm, real
pyasic, real mosquitto)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.diagnose import Probe, explain, login_refused
from collector.events import StateLog
from collector.rigs import PyasicSource
from collector.service import explain_offline, run_cycle
from hashwatt.config import Config, load_config
from sim.model import Scenario
from tests.conftest import FarmFactory, wait_for, write_config

DEADLINE_S = 2.0


def config_for(tmp_path: Path, rigs: list, mqtt_port: int = 1883) -> Config:
    return load_config(write_config(tmp_path / "c.toml", mqtt_port=mqtt_port, rigs=rigs,
                                    collector=f"deadline_s = {DEADLINE_S:g}"))


def cycle(cfg: Config, source: PyasicSource, states: StateLog) -> list[dict[str, Any]]:
    published: list[dict[str, Any]] = []
    stats = asyncio.run(run_cycle(cfg, source, published.append, states=states))
    states.cycle(stats, cfg.collector.interval_s)
    return published


@pytest.mark.e2e
def test_hung_dead_and_healthy_rigs_read_differently_and_log_only_changes(
        tmp_path: Path, farm: FarmFactory, caplog: pytest.LogCaptureFixture) -> None:
    f = farm(3, mix=("s19pro", "m50", "supra"),
             scenarios={"r01-s02": Scenario.HUNG, "r01-s03": Scenario.OFFLINE})
    cfg = config_for(tmp_path, f.rigs)
    source, states = PyasicSource(), StateLog()
    caplog.set_level(logging.INFO, logger="collector")
    by_rig = {r["rig"]: r for r in cycle(cfg, source, states)}
    # hung: the simulated Whatsminer accepts on 4028 (it has no web UI) and never answers
    assert by_rig["r01-s02"]["error"] == ("no reply within 2 s: rig hung? (port 4028 accepts "
                                          "connections but nothing answers)")
    # switched off: nothing listens on its address; loopback answers a connect with RST
    assert by_rig["r01-s03"]["error"] == (
        "identification: no miner answered: connection refused on 4028/80: rig off, "
        "rebooting or its miner software stopped")
    lines = [r.getMessage() for r in caplog.records]
    assert f"rig r01-s02 down: {by_rig['r01-s02']['error']}" in lines
    assert f"rig r01-s03 down: {by_rig['r01-s03']['error']}" in lines
    assert lines[-1] == "cycle 1: 3 rigs: 1 ok, 1 failed, 1 timeout in " \
                        f"{lines[-1].split(' in ')[1]}"
    assert not any("r01-s01" in line for line in lines)  # healthy from the start: silence

    caplog.clear()
    httpx.post(f"http://127.0.0.1:{f.control_port}/rigs/r01-s02/scenario/normal")
    cycle(cfg, source, states)
    lines = [r.getMessage() for r in caplog.records]
    assert "rig r01-s02 up again" in lines
    assert not any("r01-s03" in line for line in lines)  # still down: no new line
    assert lines[-1].startswith("cycle 2: 3 rigs: 2 ok, 1 failed, 0 timeout in ")


@pytest.mark.e2e
def test_a_rig_that_refuses_our_login_says_so(tmp_path: Path, farm: FarmFactory,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from collector.rigs.credentials import credentials_lookup

    # VNish (AnthillOS) needs a web token for its telemetry; the site changed the password
    f = farm(1, mix=("vnish",))
    monkeypatch.setenv("HW_TEST_VNISH_PASSWORD", "not-the-password")
    path = write_config(tmp_path / "c.toml", mqtt_port=1883, rigs=f.rigs,
                        collector="deadline_s = 5")
    path.write_text(path.read_text().replace(
        'id = "r01-s01"\n', 'id = "r01-s01"\nweb_password = { env = "HW_TEST_VNISH_PASSWORD" }\n'))
    cfg = load_config(path)
    source = PyasicSource(timeout_s=5, credentials=credentials_lookup(cfg))
    [reading] = cycle(cfg, source, StateLog())
    assert reading["online"] is False
    assert reading["error"] == (
        "login refused (bad reply: APIError: Could not authenticate web token with miner: "
        f"VNishWebAPI: {f.rigs[0].ip}): check the rig's credentials")
    assert "not-the-password" not in str(reading)


def test_reasons_from_connect_probes() -> None:
    first = "no reply within 8 s"
    assert explain([Probe(4028, "timeout"), Probe(80, "timeout")], first) == (
        "no reply within 8 s: no answer to connect on 4028/80: rig off or unreachable")
    assert explain([Probe(4028, "unreachable"), Probe(80, "unreachable")], first) == (
        "no reply within 8 s: no route to host: rig off or cut off from the network")
    assert explain([Probe(4028, "connected"), Probe(80, "connected")], first) == (
        "no reply within 8 s: rig hung? (ports 4028 and 80 accept connections but nothing "
        "answers)")


def test_what_is_probed_is_decided_by_the_type_not_the_text() -> None:
    from hashwatt.errors import NoAnswer, PollTimeout

    nobody = f"127.{os.environ.get('HASHWATT_TEST_SUBNET', '60')}.250.1"  # nothing listens
    # nothing answered: probed, and the published text is the same as before the types
    assert asyncio.run(explain_offline(nobody, NoAnswer("identification: no miner answered"),
                                       0.5)) == (
        "identification: no miner answered: connection refused on 4028/80: rig off, "
        "rebooting or its miner software stopped")
    assert asyncio.run(explain_offline(nobody, PollTimeout(8), 0.5)) == (
        "no reply within 8 s: connection refused on 4028/80: rig off, rebooting or its miner "
        "software stopped")
    # a rig's own words that merely begin like a timeout are not probed
    said = "no reply within the pool's 30 s window"
    assert asyncio.run(explain_offline(nobody, said, 0.5)) == said


@pytest.mark.parametrize("error", [
    # aiohttp/httpx phrasing of a refused web login, and btminer's token errors
    "bad reply: HTTPStatusError: Client error '401 Unauthorized' for url 'http://10.0.1.5/'",
    "bad reply: ClientResponseError: 403, message='Forbidden'",
    "bad reply: APIError: invalid token",
])
def test_a_refused_login_says_so(error: str) -> None:
    reason = asyncio.run(explain_offline("127.0.0.1", error, 0.5))
    assert reason == f"login refused ({error}): check the rig's credentials"
    assert login_refused("bad reply: JSONDecodeError: Expecting value") is None


def test_pdu_state_changes_and_an_overrunning_cycle_are_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="collector")
    states = StateLog()
    states.pdu({"pdu": "pdu-01", "online": True})
    states.pdu({"pdu": "pdu-01", "online": False, "error": "no reply within 2 s"})
    states.pdu({"pdu": "pdu-01", "online": False, "error": "no reply within 2 s"})
    states.pdu({"pdu": "pdu-01", "online": True})
    stats = {"rigs_total": 10, "rigs_ok": 10, "rigs_failed": 0, "rigs_timeout": 0,
             "cycle_s": 31.5, "pdus_total": 1, "pdus_ok": 1}
    states.cycle(stats, 30)
    states.cycle(stats, 30)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "PDU pdu-01 down: no reply within 2 s"),
        ("INFO", "PDU pdu-01 up again"),
        ("INFO", "cycle 1: 10 rigs: 10 ok, 0 failed, 0 timeout in 31.5 s, PDUs 1/1"),
        ("WARNING", "cycle 1 took 31.5 s, longer than interval_s = 30: raise concurrency, "
                    "lower deadline_s or shard the inventory"),
        ("INFO", "cycle 2: 10 rigs: 10 ok, 0 failed, 0 timeout in 31.5 s, PDUs 1/1"),
    ]


@pytest.mark.e2e
def test_the_collector_says_when_it_loses_and_regains_the_broker(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from collector.publisher import Publisher
    from sim.launch import Mosquitto

    broker = Mosquitto(tmp_path / "broker").start()
    cfg = config_for(tmp_path, [], mqtt_port=broker.port)
    caplog.set_level(logging.INFO, logger="collector")
    publisher = Publisher(cfg)
    try:
        publisher.start(timeout=10)
        broker.stop(kill=True)
        lost = f"lost the broker 127.0.0.1:{broker.port}"
        assert wait_for(lambda: any(r.getMessage().startswith(lost) for r in caplog.records),
                        timeout=15)
        time.sleep(0.5)
        broker.start()
        regained = f"broker 127.0.0.1:{broker.port} regained: spooled readings go out now"
        assert wait_for(lambda: any(r.getMessage() == regained for r in caplog.records),
                        timeout=30)
        levels = {r.getMessage().split(" (")[0]: r.levelname for r in caplog.records}
        assert levels[lost] == "WARNING"
    finally:
        publisher.stop(timeout=2)
        broker.stop()


def test_library_noise_is_off_unless_asked_for_twice() -> None:
    from hashwatt.cli import setup_logging

    try:
        setup_logging(1)
        assert logging.getLogger("collector").isEnabledFor(logging.DEBUG)
        for name in ("httpcore", "httpx", "pyasic", "pysnmp"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        setup_logging(2)
        assert logging.getLogger("httpcore").isEnabledFor(logging.DEBUG)
    finally:
        setup_logging(0)
